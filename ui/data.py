"""All the UI's data access: FlowStore queries behind a short TTL cache.

Live mode asks the same questions every few seconds from every open browser; the cache answers repeats
within `ttl_s` without a query. Window ends are rounded to `quantum_s` so that the map, the panels and
a second browser in the same instant share one answer.
"""

from __future__ import annotations

import threading
import time
from typing import Callable, Iterable

from proto.flow import flow_pb2
from storage.errors import StorageError
from storage.results import (DnsSummary, DropCount, FlowPage, MapEdge, RedPoint, ServiceMap,
                             ServiceMapChanges)

NS = 1_000_000_000


class TTLCache:
    """A small thread-safe cache: key -> (expiry, value); oldest entries go past `max_entries`."""

    def __init__(self, ttl_s: float, clock: Callable[[], float] = time.monotonic,
                 max_entries: int = 256, run: Callable[[Callable[[], object]], object] = lambda f: f()) -> None:
        self.ttl_s = ttl_s
        self.run = run
        self.clock = clock
        self.max_entries = max_entries
        self._items: dict = {}
        self._lock = threading.Lock()

    def get(self, key, compute: Callable[[], object]):
        now = self.clock()
        with self._lock:
            hit = self._items.get(key)
            if hit and hit[0] > now:
                return hit[1]
        value = self.run(compute)
        with self._lock:
            self._items[key] = (now + self.ttl_s, value)
            if len(self._items) > self.max_entries:
                for old in sorted(self._items, key=lambda k: self._items[k][0])[:len(self._items) // 4]:
                    del self._items[old]
        return value


def with_retries(compute: Callable[[], object], attempts: int = 3, pause_s: float = 0.1):
    """A query that meets a busy store (the embedded engine refuses a query while the relay's writer
    streams an insert on the shared connection) is asked again shortly; the last error propagates."""
    for attempt in range(attempts):
        try:
            return compute()
        except StorageError:
            if attempt == attempts - 1:
                raise
            time.sleep(pause_s * (attempt + 1))


def edge_from_selection(sel: dict) -> MapEdge:
    """The MapEdge a selected map edge stands for (counters unknown: only its key is used)."""
    return MapEdge(source=sel["source"], target=sel["target"], port=int(sel["port"]),
                   protocol=sel["protocol"], verdict=sel["verdict"], flows=0, bytes=0, requests=0,
                   errors=0, error_rate=0.0, p50_ns=None, p95_ns=None, p99_ns=None)


def _key(filters: Iterable[flow_pb2.FlowFilter]) -> tuple[bytes, ...]:
    return tuple(f.SerializeToString(deterministic=True) for f in filters)


class UIData:
    def __init__(self, store, ttl_s: float = 3.0, quantum_s: float = 2.0,
                 clock: Callable[[], int] = time.time_ns) -> None:
        self.store = store
        self.cache = TTLCache(ttl_s, run=self._recorded)
        self.policy_cache = TTLCache(max(ttl_s, 30.0), run=self._recorded)  # suggestions read every flow of the window
        self.store_problem = ""  # why the last query failed, "" once one succeeds again (the frame's banner)
        self.quantum_ns = int(quantum_s * NS)
        self.clock = clock

    def _recorded(self, compute: Callable[[], object]):
        try:
            value = with_retries(compute)
        except StorageError as err:
            self.store_problem = str(err)
            raise
        self.store_problem = ""
        return value

    def now_ns(self) -> int:
        """The current time rounded down to the quantum (shared by every query of one refresh)."""
        now = self.clock()
        return now - now % self.quantum_ns if self.quantum_ns else now

    def service_map(self, since: int, until: int, namespaces: list[str] | None) -> ServiceMap:
        ns = tuple(namespaces) if namespaces else None
        return self.cache.get(("map", since, until, ns),
                              lambda: self.store.service_map(since, until, list(ns) if ns else None))

    def service_map_changes(self, since: int, until: int,
                            namespaces: list[str] | None) -> ServiceMapChanges:
        ns = tuple(namespaces) if namespaces else None
        return self.cache.get(("changes", since, until, ns),
                              lambda: self.store.service_map_changes(since, until,
                                                                     list(ns) if ns else None))

    def namespaces(self, since: int | None = None) -> list[str]:
        return self.cache.get(("namespaces", since), lambda: self.store.namespaces(since))

    def flows_page(self, filters: list[flow_pb2.FlowFilter], since: int, until: int, offset: int,
                   limit: int, sort: str, descending: bool, selection: dict | None) -> FlowPage:
        """A page of the flows behind the selection (an edge, a node, two namespaces) and the filters."""
        edge = node = None
        whitelist = list(filters)
        if selection and selection["kind"] == "edge":
            edge = edge_from_selection(selection)
        elif selection and selection["kind"] == "node":
            node = selection["id"]
        elif selection and selection["kind"] == "namespaces":
            whitelist = _between_namespaces(whitelist, selection["source"], selection["target"])
        key = ("page", _key(whitelist), since, until, offset, limit, sort, descending,
               tuple(sorted((selection or {}).items())))
        return self.cache.get(key, lambda: self.store.flows_page(
            whitelist, since=since, until=until, offset=offset, limit=limit, sort=sort,
            descending=descending, edge=edge, node=node))

    def flow(self, uuid: str) -> flow_pb2.Flow | None:
        return self.cache.get(("flow", uuid), lambda: self.store.get_flow(uuid))

    def http_red(self, since: int, until: int, step_s: int, namespace: str | None = None,
                 workload: str | None = None) -> list[RedPoint]:
        return self.cache.get(("red", since, until, step_s, namespace, workload),
                              lambda: self.store.http_red(since, until, step_s, namespace, workload))

    def dns_summary(self, since: int, until: int, step_s: int, namespace: str | None = None,
                    workload: str | None = None) -> DnsSummary:
        return self.cache.get(("dns", since, until, step_s, namespace, workload),
                              lambda: self.store.dns_summary(since, until, step_s, namespace, workload))

    def drops_by_reason(self, since: int, until: int, namespaces: list[str] | None) -> list[DropCount]:
        ns = tuple(namespaces) if namespaces else None
        return self.cache.get(("drops", since, until, ns),
                              lambda: self.store.drops_by_reason(since, until, list(ns) if ns else None))


    def suggestions(self, since: int, until: int, fmt: str = "k8s") -> list:
        """Least-privilege policies per workload from the window's flows (enforcer.suggest)."""
        def compute():
            from enforcer.history import iter_flows
            from enforcer.suggest import SuggestOptions, observe, suggest
            return suggest(observe(iter_flows(self.store, since, until)), SuggestOptions(format=fmt))
        return self.policy_cache.get(("suggest", since, until, fmt), compute)

    def applied_policies(self, pin_dir: str) -> dict[tuple[str, str, str], dict]:
        """(kind, namespace, name) -> document of the policies applied to the datapath at `pin_dir`."""
        def compute():
            from enforcer.datapath.registry import Registry
            return {(p.kind, p.namespace, p.name): p.document for p in Registry.load(pin_dir).policies.values()}
        return self.cache.get(("applied", pin_dir), compute)


def _side(f: flow_pb2.FlowFilter, role: str, node: str) -> None:
    """A drawn node of an aggregated edge: a collapsed namespace ("ns:shop") or a non-pod node
    ("world:api.example.com", "host:host"), matched by its reserved label."""
    if node.startswith("ns:"):
        getattr(f, f"{role}_pod").append(node[3:] + "/")
    else:
        getattr(f, f"{role}_label").append("reserved:" + node.partition(":")[0])


def _between_namespaces(filters: list[flow_pb2.FlowFilter], source: str,
                        target: str) -> list[flow_pb2.FlowFilter]:
    """Flows between two drawn nodes of a collapsed map (either direction), within the filters."""
    out = []
    for base in filters or [flow_pb2.FlowFilter()]:
        for a, b in ((source, target), (target, source)):
            f = flow_pb2.FlowFilter()
            f.CopyFrom(base)
            _side(f, "source", a)
            _side(f, "destination", b)
            out.append(f)
    return out
