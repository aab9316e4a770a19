"""What the policy maps should hold, as plain Python values, and the diff that writes it.

`MapState` is the output of compiling policies (enforcer.compile) and the input of `sync()`. A sync
writes additions and changes before deletions, rules before the endpoint flags that switch enforcement
on, and switches enforcement off before removing rules, so no new connection ever sees an endpoint
enforced with half its rules. Established connections are untouched: they pass through conntrack.
"""

from __future__ import annotations

import ctypes
import ipaddress
import json
import pathlib
from dataclasses import dataclass, field

from enforcer.datapath import ports
from enforcer.datapath.maps import (FAMILY_V4, FAMILY_V6, IPCACHE_FIXED_BITS, RULE_FIXED_BITS, EndpointValue,
                                    IpcacheKey, IpcacheValue, PolicyMaps, RuleKey, RuleValue)

# (ep_identity, peer_identity, direction, proto, port, port_prefix_bits)
RuleSlot = tuple[int, int, int, int, int, int]
# (family 4/6, network address packed, prefix length)
IpSlot = tuple[int, bytes, int]


@dataclass(frozen=True)
class Rule:
    """One compiled L3/L4 rule, before port resolution."""

    ep_identity: int
    peer_identity: int       # 0 = any peer
    direction: int           # DIR_INGRESS / DIR_EGRESS
    proto: int               # IPPROTO_*, 0 = any
    port_lo: int = 0
    port_hi: int = ports.PORT_MAX
    action: int = ports.RULE_ALLOW
    policy_id: int = 0


@dataclass
class MapState:
    # ifindex -> (identity, flags, ingress policy id, egress policy id)
    endpoints: dict[int, tuple[int, int, int, int]] = field(default_factory=dict)
    ipcache: dict[IpSlot, int] = field(default_factory=dict)              # prefix -> identity
    rules: dict[RuleSlot, tuple[int, int]] = field(default_factory=dict)  # slot -> (action, policy_id)


def rules_to_slots(rules: list[Rule]) -> dict[RuleSlot, tuple[int, int]]:
    groups: dict[tuple[int, int, int, int], list[ports.PortRule]] = {}
    for r in rules:
        groups.setdefault((r.ep_identity, r.peer_identity, r.direction, r.proto), []).append(
            ports.PortRule(r.port_lo, r.port_hi, r.action, r.policy_id))
    return {(*group, p.port, p.bits): (p.action, p.policy_id)
            for group, members in groups.items() for p in ports.compile_group(members)}


def ip_slot(cidr: str) -> IpSlot:
    net = ipaddress.ip_network(cidr, strict=False)
    return (FAMILY_V4 if net.version == 4 else FAMILY_V6, net.network_address.packed, net.prefixlen)


def _rule_key(slot: RuleSlot) -> RuleKey:
    ep, peer, direction, proto, port, bits = slot
    return RuleKey(prefixlen=RULE_FIXED_BITS + bits, ep_identity=ep, peer_identity=peer, direction=direction,
                   proto=proto, dport_be=int.from_bytes(port.to_bytes(2, "big"), "little"))


def _ip_key(slot: IpSlot) -> IpcacheKey:
    family, packed, plen = slot
    key = IpcacheKey(prefixlen=IPCACHE_FIXED_BITS + plen, family=family)
    key.addr[:len(packed)] = list(packed)
    return key


def read_state(maps: PolicyMaps) -> MapState:
    """What the maps hold now (another process may have written them: `policy apply` then collector)."""
    state = MapState()
    for k in maps.endpoints.keys():
        v = maps.endpoints.lookup(k)
        if v is not None:
            state.endpoints[k.value] = (v.identity, v.flags, v.ingress_policy_id, v.egress_policy_id)
    for k in maps.ipcache.keys():
        v = maps.ipcache.lookup(k)
        if v is not None:
            size = 4 if k.family == FAMILY_V4 else 16
            state.ipcache[(k.family, bytes(k.addr[:size]), k.prefixlen - IPCACHE_FIXED_BITS)] = v.identity
    for k in maps.rules.keys():
        v = maps.rules.lookup(k)
        if v is not None:
            port = int.from_bytes(k.dport_be.to_bytes(2, "little"), "big")
            slot = (k.ep_identity, k.peer_identity, k.direction, k.proto, port, k.prefixlen - RULE_FIXED_BITS)
            state.rules[slot] = (v.action, v.policy_id)
    return state


@dataclass
class SyncStats:
    written: int = 0
    deleted: int = 0


def sync(maps: PolicyMaps, want: MapState, have: MapState | None = None) -> SyncStats:
    """Make the maps hold exactly `want`, in an order that never enforces half a policy. `have` is what
    they hold (read from the maps when not given: listing an LPM trie is quadratic in its size)."""
    have = read_state(maps) if have is None else have
    stats = SyncStats()
    for slot, identity in want.ipcache.items():
        if have.ipcache.get(slot) != identity:
            maps.ipcache.update(_ip_key(slot), IpcacheValue(identity))
            stats.written += 1
    for slot, (action, policy_id) in want.rules.items():
        if have.rules.get(slot) != (action, policy_id):
            maps.rules.update(_rule_key(slot), RuleValue(action=action, policy_id=policy_id))
            stats.written += 1
    for ifindex, value in want.endpoints.items():
        if have.endpoints.get(ifindex) != value:
            identity, flags, ingress_id, egress_id = value
            maps.endpoints.update(ctypes.c_uint32(ifindex), EndpointValue(
                identity=identity, flags=flags, ingress_policy_id=ingress_id, egress_policy_id=egress_id))
            stats.written += 1
    for ifindex in have.endpoints.keys() - want.endpoints.keys():
        stats.deleted += maps.endpoints.delete(ctypes.c_uint32(ifindex))
    for slot in have.rules.keys() - want.rules.keys():
        stats.deleted += maps.rules.delete(_rule_key(slot))
    for slot in have.ipcache.keys() - want.ipcache.keys():
        stats.deleted += maps.ipcache.delete(_ip_key(slot))
    return stats


def union(a: MapState, b: MapState) -> MapState:
    return MapState({**a.endpoints, **b.endpoints}, {**a.ipcache, **b.ipcache}, {**a.rules, **b.rules})


def map_ids(maps: PolicyMaps) -> list[int]:
    from enforcer.datapath.bpf import map_info
    return [map_info(m.fd).id for m in (maps.endpoints, maps.ipcache, maps.rules)]


def save_state(path: pathlib.Path, maps: PolicyMaps, state: MapState) -> None:
    """What the maps hold, remembered with the maps' kernel ids (a recreated map invalidates it)."""
    data = {"map_ids": map_ids(maps),
            "endpoints": [[k, *v] for k, v in state.endpoints.items()],
            "ipcache": [[f, a.hex(), p, v] for (f, a, p), v in state.ipcache.items()],
            "rules": [[*k, *v] for k, v in state.rules.items()]}
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data))
    tmp.replace(path)


def load_state(path: pathlib.Path, maps: PolicyMaps) -> MapState | None:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    if data.get("map_ids") != map_ids(maps):
        return None
    return MapState({e[0]: tuple(e[1:]) for e in data["endpoints"]},
                    {(f, bytes.fromhex(a), p): v for f, a, p, v in data["ipcache"]},
                    {tuple(e[:6]): tuple(e[6:]) for e in data["rules"]})
