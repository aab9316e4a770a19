"""`policy apply` / `policy remove`: record the policies next to the pinned maps and rewrite the maps.
Map writes only: the running programs are never reloaded, so established connections keep flowing."""

from __future__ import annotations

import json
import logging
import subprocess
from dataclasses import dataclass

from common.endpoints import Endpoint
from collector.identity import IdentityAllocator
from enforcer.compile import CompileInput, CompileResult, compile_policies
from enforcer.datapath.maps import PolicyMaps
from enforcer.datapath.registry import AUDIT, ENFORCE, Registry
from enforcer.datapath.state import SyncStats, load_state, read_state, save_state, sync, union
from enforcer.policy.model import Policy

log = logging.getLogger(__name__)
DEFAULT_IDENTITY_STATE = "/var/lib/flowscope/identities.json"   # the collector's (collector.agent)


@dataclass
class ApplyReport:
    applied: list[str]
    removed: list[str]
    result: CompileResult
    stats: SyncStats
    datapath_running: bool


def apply_policies(policies: list[Policy], pin_dir: str, endpoints: list[Endpoint], audit: bool = False,
                   identity_state: str | None = DEFAULT_IDENTITY_STATE, host_ips: tuple[str, ...] = (),
                   fqdn_ips: dict[str, tuple[str, ...]] | None = None) -> ApplyReport:
    registry = Registry.load(pin_dir)
    applied = []
    for policy in policies:
        registry.put(policy, AUDIT if audit else ENFORCE)
        if policy.key not in applied:
            applied.append(policy.key)
    registry.save()   # names first: a drop that the new maps cause must already find its policy
    result, stats, running = sync_datapath(registry, pin_dir, endpoints, identity_state, host_ips, fqdn_ips,
                                           policies)
    return ApplyReport(applied, [], result, stats, running)


def remove_policies(keys_or_names: list[str], pin_dir: str, endpoints: list[Endpoint],
                    identity_state: str | None = DEFAULT_IDENTITY_STATE, host_ips: tuple[str, ...] = (),
                    fqdn_ips: dict[str, tuple[str, ...]] | None = None) -> ApplyReport:
    """Remove by Policy.key (kind/namespace/name), "namespace/name" or plain name; "all" removes every one."""
    registry = Registry.load(pin_dir)
    removed = [key for key, p in list(registry.policies.items())
               if "all" in keys_or_names or key in keys_or_names or p.name in keys_or_names
               or f"{p.namespace}/{p.name}" in keys_or_names]
    result, stats, running = sync_datapath(_without(registry, removed), pin_dir, endpoints, identity_state,
                                           host_ips, fqdn_ips)
    for key in removed:
        registry.remove(key)
    registry.save()   # after the maps: until then a drop may still name the removed policy
    return ApplyReport([], removed, result, stats, running)


def _without(registry: Registry, keys: list[str]) -> Registry:
    return Registry(registry.path, {k: v for k, v in registry.policies.items() if k not in keys},
                    registry.audit_namespaces)


def sync_datapath(registry: Registry, pin_dir: str, endpoints: list[Endpoint], identity_state: str | None,
                  host_ips: tuple[str, ...] = (), fqdn_ips: dict[str, tuple[str, ...]] | None = None,
                  parsed: list[Policy] = ()) -> tuple[CompileResult, SyncStats, bool]:
    """Compile the registry's policies (`parsed`: those already parsed, not read again) and write the maps."""
    inp = CompileInput(registry.parsed(parsed), endpoints, registry.ids(), IdentityAllocator(identity_state),
                       registry.audit_keys(), frozenset(registry.audit_namespaces), host_ips, dict(fqdn_ips or {}))
    result = compile_policies(inp)
    maps = PolicyMaps.open(pin_dir)
    cache = registry.path.with_suffix(".maps.json")
    try:
        have = load_state(cache, maps) or read_state(maps)
        save_state(cache, maps, union(have, result.state))   # a crash mid-sync leaves no entry unknown
        stats = sync(maps, result.state, have)
        save_state(cache, maps, result.state)
        running = datapath_uses(maps)
    finally:
        maps.close()
    for warning in result.warnings:
        log.warning("%s", warning)
    return result, stats, running


def datapath_uses(maps: PolicyMaps) -> bool:
    """Whether a loaded BPF program reads these policy maps (a datapath compiled with enforcement)."""
    from enforcer.datapath.bpf import BpfError, map_info
    try:
        map_id = map_info(maps.rules.fd).id
        out = subprocess.run(["bpftool", "prog", "show", "-j"], capture_output=True, text=True, timeout=10)
        progs = json.loads(out.stdout or "[]")
    except (BpfError, OSError, ValueError, subprocess.TimeoutExpired):
        return False
    return any(map_id in p.get("map_ids", []) for p in progs)


def local_addresses() -> tuple[str, ...]:
    """This node's own addresses (reserved:host), from the root network namespace."""
    from pyroute2 import IPRoute
    with IPRoute() as ipr:
        return tuple(a.get_attr("IFA_ADDRESS") for a in ipr.get_addr() if a.get_attr("IFA_ADDRESS"))
