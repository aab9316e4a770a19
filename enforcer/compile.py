"""Policies -> the contents of the kernel's policy maps (enforcer.datapath.state.MapState).

* endpoints: each local pod device (ifindex) -> its identity (the collector's, from its labels) and
  which directions some policy selects it for (default deny there), plus audit;
* ipcache: every known pod address -> its identity, the node's addresses -> reserved:host, every CIDR
  named by a policy (and each `except`) and every IP learned for a toFQDNs name -> a local CIDR identity
  (bit 24 set, outside the cluster's 24-bit identity space); anything else is reserved:world;
* rules: (endpoint identity, peer identity or any, direction, protocol or any, port range) -> allow or
  deny and the policy id. A CIDR rule allows the identities of the prefixes inside its block and not
  inside an except, which is exactly what a longest-prefix lookup of an address then finds.
"""

from __future__ import annotations

import hashlib
import ipaddress
import logging
from dataclasses import dataclass, field
from typing import Iterable

from common.endpoints import Endpoint
from collector.identity import RESERVED_HOST, RESERVED_REMOTE_NODE, RESERVED_WORLD, IdentityAllocator
from enforcer.datapath.maps import (DIR_EGRESS, DIR_INGRESS, EP_AUDIT, EP_ENFORCE_EGRESS, EP_ENFORCE_INGRESS,
                                    IDENTITY_ANY)
from enforcer.datapath.ports import PORT_MAX, RULE_ALLOW, RULE_DENY
from enforcer.datapath.state import MapState, Rule as MapRule, ip_slot, rules_to_slots
from enforcer.peers import from_endpoint
from enforcer.policy.model import (EGRESS, INGRESS, PROTO_NUMBERS, CidrPeer, EndpointSelector, EntityPeer, FqdnPeer,
                                   Policy, PortSpec, Rule)

log = logging.getLogger(__name__)

LOCAL_IDENTITY_FLAG = 1 << 24
_DIRS = {INGRESS: (DIR_INGRESS, EP_ENFORCE_INGRESS), EGRESS: (DIR_EGRESS, EP_ENFORCE_EGRESS)}


@dataclass
class CompileInput:
    policies: list[Policy]
    endpoints: list[Endpoint]                       # every known pod (peers), local ones have an ifindex
    policy_ids: dict[str, int]                      # Policy.key -> id
    identities: IdentityAllocator = field(default_factory=IdentityAllocator)
    audit_policies: frozenset[str] = frozenset()    # keys of policies applied in audit mode
    audit_namespaces: frozenset[str] = frozenset()
    host_ips: tuple[str, ...] = ()
    fqdn_ips: dict[str, tuple[str, ...]] = field(default_factory=dict)   # ip -> names (from DNS answers)
    node_name: str = ""
    # "namespace/pod" -> container port name -> (protocol, port). Neither the lab nor the Endpoint model
    # carries container ports yet, so named ports usually resolve to nothing (and say so in warnings).
    named_ports: dict[str, dict[str, tuple[str, int]]] = field(default_factory=dict)


@dataclass
class CompileResult:
    state: MapState
    selected: dict[str, list[str]]                  # "ns/pod" -> keys of the policies selecting it
    warnings: list[str]


def cidr_identity(prefix: str) -> int:
    digest = hashlib.sha256(f"cidr:{prefix}".encode()).digest()
    return LOCAL_IDENTITY_FLAG | int.from_bytes(digest[:3], "big")


def compile_policies(inp: CompileInput) -> CompileResult:
    state = MapState()
    warnings: list[str] = []
    peers = [(ep, from_endpoint(ep), inp.identities.identity_for(ep.identity_labels())) for ep in inp.endpoints
             if not ep.host_network]
    for _ep, info, identity in peers:
        for ip in _ep.ips:
            state.ipcache[ip_slot(ip)] = identity
    for ip in inp.host_ips:
        state.ipcache[ip_slot(ip)] = RESERVED_HOST
    prefixes = _prefix_identities(inp)
    for prefix, identity in prefixes.items():
        state.ipcache.setdefault(ip_slot(prefix), identity)

    rules: set[MapRule] = set()
    selected: dict[str, list[str]] = {}
    for ep, info, identity in peers:
        if not ep.ifindex or (inp.node_name and ep.node_name not in ("", inp.node_name)):
            continue
        flags = 0
        default_ids = {INGRESS: 0, EGRESS: 0}
        for direction, (kernel_dir, flag) in _DIRS.items():
            selecting = [p for p in inp.policies if p.rules(direction) is not None and p.selects(info)]
            if not selecting:
                continue
            flags |= flag
            default_ids[direction] = inp.policy_ids[min(p.key for p in selecting)]
            for policy in selecting:
                selected.setdefault(f"{ep.namespace}/{ep.pod_name}", []).append(policy.key)
                if policy.key in inp.audit_policies:
                    flags |= EP_AUDIT
                for rule in policy.rules(direction) or ():
                    named = inp.named_ports.get(f"{ep.namespace}/{ep.pod_name}", {}) if direction == INGRESS \
                        else {}   # egress: the peer's names, per peer; not resolved (warned)
                    rules.update(_rule_entries(rule, identity, kernel_dir, inp.policy_ids[policy.key], peers,
                                               prefixes, inp, warnings, policy, named))
        if ep.namespace in inp.audit_namespaces:
            flags |= EP_AUDIT
        if flags & (EP_ENFORCE_INGRESS | EP_ENFORCE_EGRESS):
            state.endpoints[ep.ifindex] = (identity, flags, default_ids[INGRESS], default_ids[EGRESS])
    state.rules = rules_to_slots(sorted(rules, key=lambda r: (r.policy_id, r.peer_identity, r.port_lo)))
    return CompileResult(state, {k: sorted(set(v)) for k, v in selected.items()}, warnings)


def _prefix_identities(inp: CompileInput) -> dict[str, int]:
    """Every CIDR (and except) named by a policy, and a /32 or /128 per toFQDNs IP -> its identity."""
    prefixes: set[str] = set()
    for policy in inp.policies:
        for direction in (INGRESS, EGRESS):
            for rule in policy.rules(direction) or ():
                for peer in rule.peers or ():
                    if isinstance(peer, CidrPeer):
                        prefixes.add(peer.cidr)
                        prefixes.update(peer.excepts)
    if _uses_fqdn(inp.policies):
        prefixes.update(str(ipaddress.ip_network(ip)) for ip in inp.fqdn_ips)
    return {p: cidr_identity(p) for p in sorted(prefixes)}


def _uses_fqdn(policies: Iterable[Policy]) -> bool:
    return any(isinstance(peer, FqdnPeer) for p in policies for d in (INGRESS, EGRESS)
               for r in p.rules(d) or () for peer in r.peers or ())


def _peer_identities(rule: Rule, peers, prefixes: dict[str, int], inp: CompileInput) -> set[int]:
    if rule.peers is None:
        return {IDENTITY_ANY}
    out: set[int] = set()
    for peer in rule.peers:
        if isinstance(peer, EndpointSelector):
            out.update(identity for _ep, info, identity in peers if peer.matches(info))
        elif isinstance(peer, EntityPeer):
            out.update(_entity_identities(peer.entity, peers, prefixes))
        elif isinstance(peer, CidrPeer):
            out.update(identity for prefix, identity in prefixes.items() if _inside(prefix, peer))
        elif isinstance(peer, FqdnPeer):
            out.update(prefixes[str(ipaddress.ip_network(ip))] for ip, names in inp.fqdn_ips.items()
                       if any(peer.matches_name(n) for n in names))
    return out


def _entity_identities(entity: str, peers, prefixes: dict[str, int]) -> set[int]:
    if entity == "all":
        return {IDENTITY_ANY}
    if entity == "world":
        # Addresses outside the cluster carry CIDR identities when a policy names their block.
        return {RESERVED_WORLD, *prefixes.values()}
    if entity == "host":
        return {RESERVED_HOST}
    if entity == "remote-node":
        return {RESERVED_REMOTE_NODE}
    if entity == "cluster":
        return {RESERVED_HOST, RESERVED_REMOTE_NODE, *(identity for _ep, _info, identity in peers)}
    return set()


def _inside(prefix: str, peer: CidrPeer) -> bool:
    net = ipaddress.ip_network(prefix)
    block = ipaddress.ip_network(peer.cidr)
    if net.version != block.version or not net.subnet_of(block):
        return False
    return not any(net.subnet_of(ipaddress.ip_network(e)) for e in peer.excepts
                   if ipaddress.ip_network(e).version == net.version)


def _port_ranges(rule: Rule, named: dict[str, tuple[str, int]], warnings: list[str],
                 policy: Policy) -> list[tuple[int, int, int]]:
    if not rule.ports:
        return [(0, 0, PORT_MAX)]
    out = []
    for spec in rule.ports:
        out.extend(_spec_ranges(spec, named, warnings, policy, rule))
    return out


def _spec_ranges(spec: PortSpec, named: dict[str, tuple[str, int]], warnings: list[str], policy: Policy,
                 rule: Rule) -> list[tuple[int, int, int]]:
    if spec.name is not None:
        if spec.name not in named:
            warnings.append(f"{policy.key} {rule.path}: named port {spec.name!r} is not known for the "
                            "selected pods; it allows nothing")
            return []
        proto, port = named[spec.name]
        return [(PROTO_NUMBERS[proto], port, port)]
    lo, hi = (spec.port, spec.end_port or spec.port) if spec.port is not None else (0, PORT_MAX)
    return [(PROTO_NUMBERS[p], lo, hi) for p in spec.protocols()]


def _rule_entries(rule: Rule, ep_identity: int, direction: int, policy_id: int, peers, prefixes, inp: CompileInput,
                  warnings: list[str], policy: Policy, named: dict[str, tuple[str, int]]) -> list[MapRule]:
    peer_ids = _peer_identities(rule, peers, prefixes, inp)
    ranges = _port_ranges(rule, named, warnings, policy)
    action = RULE_DENY if rule.deny else RULE_ALLOW
    return [MapRule(ep_identity, peer, direction, proto, lo, hi, action, policy_id)
            for peer in peer_ids for proto, lo, hi in ranges]
