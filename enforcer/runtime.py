"""Keeping the policy maps in step while the collector runs: pods come and go (new devices, new
identities) and DNS answers name new addresses for toFQDNs rules (like Cilium, a toFQDNs rule opens
only for addresses a DNS answer gave, as the answers arrive).

The collector owns the loop: `agent.on_endpoints(cache.all_endpoints())` when its endpoint cache
changes and `observer.hooks.append(agent.observe)` for DNS answers. Both are cheap when nothing under
an applied policy changed; a change is one compile and a diff of map writes.
"""

from __future__ import annotations

import json
import logging
import threading
from typing import Callable

from common.endpoints import Endpoint
from enforcer.apply import sync_datapath
from enforcer.datapath.registry import Registry, registry_path
from enforcer.policy.model import EGRESS, INGRESS, FqdnPeer, Policy
from proto.flow import flow_pb2

log = logging.getLogger(__name__)


def fqdn_path(pin_dir: str):
    return registry_path(pin_dir).with_suffix(".fqdn.json")


def load_fqdn_ips(pin_dir: str) -> dict[str, tuple[str, ...]]:
    """Addresses learned from DNS answers for toFQDNs names: ip -> names (shared by collector and CLI)."""
    try:
        return {ip: tuple(names) for ip, names in json.loads(fqdn_path(pin_dir).read_text()).items()}
    except (OSError, ValueError):
        return {}


def save_fqdn_ips(pin_dir: str, ips: dict[str, tuple[str, ...]]) -> None:
    path = fqdn_path(pin_dir)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps({ip: list(names) for ip, names in ips.items()}))
    tmp.replace(path)


def fqdn_selectors(policies: list[Policy]) -> list[FqdnPeer]:
    return [peer for p in policies for d in (INGRESS, EGRESS) for r in p.rules(d) or () for peer in r.peers or ()
            if isinstance(peer, FqdnPeer)]


class PolicyAgent:
    def __init__(self, pin_dir: str, identity_state: str | None = None, host_ips: tuple[str, ...] = (),
                 on_error: Callable[[Exception], None] | None = None) -> None:
        self.pin_dir = pin_dir
        self.identity_state = identity_state
        self.host_ips = host_ips
        self.on_error = on_error or (lambda err: log.warning("policy sync: %s", err))
        self._lock = threading.Lock()
        self._endpoints: list[Endpoint] = []
        self._signature: tuple = ()
        self._fqdn_ips = load_fqdn_ips(pin_dir)
        self.syncs = 0

    def on_endpoints(self, endpoints: list[Endpoint]) -> bool:
        """Resync when the pods (addresses, devices, labels) changed; True if it did."""
        signature = tuple(sorted((e.namespace, e.pod_name, e.ips, e.ifindex, e.identity_labels()) for e in endpoints))
        with self._lock:
            if signature == self._signature:
                return False
            self._signature, self._endpoints = signature, list(endpoints)
        return self.resync()

    def observe(self, flow: flow_pb2.Flow) -> None:
        """Observer hook: a DNS answer for a name some applied toFQDNs rule selects opens its addresses."""
        if not flow.l7.HasField("dns") or flow.l7.type != flow_pb2.RESPONSE or not flow.l7.dns.ips:
            return
        names = [flow.l7.dns.query.rstrip(".")] + [c.rstrip(".") for c in flow.l7.dns.cnames]
        new = [ip for ip in flow.l7.dns.ips if not set(names) <= set(self._fqdn_ips.get(ip, ()))]
        if not new:
            return
        selectors = fqdn_selectors(self._registry().parsed())
        if not any(s.matches_name(n) for s in selectors for n in names):
            return
        with self._lock:
            for ip in new:
                self._fqdn_ips[ip] = tuple(dict.fromkeys((*self._fqdn_ips.get(ip, ()), *names)))
            save_fqdn_ips(self.pin_dir, self._fqdn_ips)
        self.resync()

    def resync(self) -> bool:
        try:
            with self._lock:
                registry = self._registry()
                if not registry.policies:
                    return False
                sync_datapath(registry, self.pin_dir, self._endpoints, self.identity_state, self.host_ips,
                              self._fqdn_ips)
                self.syncs += 1
            return True
        except Exception as err:   # a bad registry or a full map must not stop the collector
            self.on_error(err)
            return False

    def _registry(self) -> Registry:
        return Registry.load(self.pin_dir)
