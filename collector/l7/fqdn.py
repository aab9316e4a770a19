"""IP -> DNS names, learned from DNS answers, so later flows to those IPs carry destination_names."""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from typing import Callable

from proto.flow import flow_pb2


class FqdnCache:
    """Bounded (LRU over IPs), TTL-aware map from an IP to the names that resolved to it.

    A name stays at least `min_ttl_s` seconds (like Cilium's tofqdns-min-ttl, shorter by default):
    a connection usually follows its lookup quickly, but records with TTL 0 would otherwise never name
    anything. Thread-safe: the L7 dispatcher writes, the decoder and the enforcer read.
    """

    def __init__(self, max_ips: int = 65536, min_ttl_s: int = 60,
                 clock: Callable[[], int] = time.monotonic_ns) -> None:
        self.max_ips = max_ips
        self.min_ttl_s = min_ttl_s
        self.clock = clock
        self._names: OrderedDict[str, dict[str, int]] = OrderedDict()  # ip -> name -> expiry (ns)
        self._lock = threading.Lock()

    def observe(self, dns: flow_pb2.DNS) -> None:
        """Learn from one DNS answer: the query name and its CNAME targets, for every IP answered."""
        if dns.rcode != 0 or not dns.ips:
            return
        names = [dns.query.rstrip(".")] + [c.rstrip(".") for c in dns.cnames]
        expiry = self.clock() + max(dns.ttl, self.min_ttl_s) * 1_000_000_000
        with self._lock:
            for ip in dns.ips:
                known = self._names.pop(ip, None) or {}
                for name in names:
                    if name:
                        known.pop(name, None)
                        known[name] = expiry
                self._names[ip] = known
            while len(self._names) > self.max_ips:
                self._names.popitem(last=False)

    def names_for_ip(self, ip: str) -> list[str]:
        """Names (without the trailing dot, as Hubble shows them) whose answers for `ip` have not expired,
        the query name of the latest answer first."""
        now = self.clock()
        with self._lock:
            known = self._names.get(ip)
            if not known:
                return []
            alive = {name: expiry for name, expiry in known.items() if expiry > now}
            if len(alive) != len(known):
                if alive:
                    self._names[ip] = alive
                else:
                    del self._names[ip]
        latest = max(alive.values(), default=0)
        return [n for n, e in alive.items() if e == latest] + [n for n, e in alive.items() if e != latest]

    def __len__(self) -> int:
        return len(self._names)
