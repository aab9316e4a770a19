"""The service map: its edges per window from the edges aggregates — the one SQL the UI, the JSON API
(both through FlowStore.service_map) and Grafana's dashboards (deploy/grafana/generate.py builds its
panels on edges_sql and node_id_sql) read — plus top talkers and the namespaces seen."""

from __future__ import annotations

import dataclasses
from typing import Iterable

from common.dns_search import is_search_expansion

from common.timeparse import TimeLike
from proto.flow import flow_pb2
from storage.core import StoreCore
from storage.errors import StorageError
from storage.queries.window import L7_NAMES, NS, PROTOCOL_NAMES, enum_name, minutes, namespaces_sql, ns, quantiles
from storage.results import MapEdge, MapNode, ServiceMap, ServiceMapChanges, Talker
from storage.schema.ddl import QUANTILES_MERGE

HOURLY_FROM_S = 6 * 3600  # service maps of windows this long or longer read hourly edges
# One edge of the map: a client workload talking to a server workload's port, per protocol and verdict.
EDGE_KEY = ("client_namespace", "client_workload", "client_kind", "server_namespace", "server_workload",
            "server_kind", "server_port", "protocol", "verdict")
# The measures edges_sql gives each edge, by name (aliases differ from the aggregate columns' names:
# ClickHouse would otherwise resolve sumMerge(flows) to the alias).
EDGE_MEASURES = {
    "edge_flows": "sumMerge(flows)", "edge_bytes": "sumMerge(bytes)", "edge_requests": "sumMerge(requests)",
    "edge_errors": "sumMerge(errors)", "edge_latency": f"{QUANTILES_MERGE}(latency)",
    # at most 8 addresses of a non-pod server, sorted
    "edge_ips": "arraySlice(arraySort(groupUniqArrayMerge(server_ips)), 1, 8)",
    "edge_l7": "groupBitOrMerge(l7_protos)",  # bit i set: L7 protocol i (L7_NAMES) seen on the edge
}


def edges_sql(table: str, window: str, narrow: str = "") -> str:
    """SELECT of the service map's edges: EDGE_KEY then EDGE_MEASURES, one row per edge, from an edges
    table (edges_1m or edges_1h) where `window` (SQL on `minute`) holds; `narrow`: ` AND ...` more."""
    measures = ", ".join(f"{sql} AS {name}" for name, sql in EDGE_MEASURES.items())
    return (f"SELECT {', '.join(EDGE_KEY)}, {measures} FROM {table} WHERE {window}{narrow} "
            f"GROUP BY {', '.join(EDGE_KEY)}")


def node_id(namespace: str, workload: str, kind: str) -> str:
    """A map node's id: namespace/workload for pods, kind:name otherwise (world:api.example.com)."""
    return f"{namespace}/{workload}" if kind == "pod" else f"{kind}:{workload}"


def node_id_sql(role: str) -> str:
    """SQL of node_id for the client or server end of an edges_sql row."""
    return (f"if({role}_kind = 'pod', concat({role}_namespace, '/', {role}_workload), "
            f"concat({role}_kind, ':', {role}_workload))")


def _edge_namespaces_sql(namespaces: Iterable[str] | None) -> str:
    return namespaces_sql(namespaces, "client_namespace", "server_namespace")


class ServiceMapQueries(StoreCore):
    def _edges_table(self, since: TimeLike, until: TimeLike) -> tuple[str, int]:
        """edges_1h for windows of HOURLY_FROM_S or more (hour resolution), else edges_1m."""
        since_ns, until_ns = ns(since, "since"), ns(until, "until")
        if since_ns is not None and until_ns is not None and until_ns - since_ns >= HOURLY_FROM_S * NS \
                and 6 in self._applied():
            return self.layout.table("edges_1h"), 3600
        return self.layout.table("edges_1m"), 60

    def service_map(self, since: TimeLike, until: TimeLike,
                    namespaces: Iterable[str] | None = None) -> ServiceMap:
        """Nodes and edges of [since, until] at minute resolution (the minute containing `since` is
        included; windows of 6 h or more at hour resolution). `namespaces`: edges with either end in
        one of them (None = all)."""
        table, bucket = self._edges_table(since, until)
        since_ns, until_ns, window = minutes(since, until, bucket_s=bucket)
        rows = self.backend.rows(edges_sql(table, window, _edge_namespaces_sql(namespaces)))
        nodes: dict[str, dict] = {}
        edges = []
        for (sns, swl, skind, dns_, dwl, dkind, port, proto, verdict, flows, size, requests, errors,
             latency, ips, l7) in rows:
            source, target = node_id(sns, swl, skind), node_id(dns_, dwl, dkind)
            for nid, namespace, wl, kind in ((source, sns, swl, skind), (target, dns_, dwl, dkind)):
                nodes.setdefault(nid, {"id": nid, "namespace": namespace, "workload": wl, "kind": kind,
                                       "flows_in": 0, "flows_out": 0})
            nodes[source]["flows_out"] += flows
            nodes[target]["flows_in"] += flows
            p50, p95, p99 = quantiles(latency)
            edges.append(MapEdge(source=source, target=target, port=port,
                                 protocol=PROTOCOL_NAMES.get(proto, str(proto)),
                                 verdict=enum_name(flow_pb2.Verdict, verdict), flows=flows, bytes=size,
                                 requests=requests, errors=errors,
                                 error_rate=errors / requests if requests else 0.0,
                                 p50_ns=p50, p95_ns=p95, p99_ns=p99,
                                 l7=tuple(sorted(name for bit, name in L7_NAMES.items() if l7 >> bit & 1)),
                                 target_ips=tuple(sorted(ips))))
        edges = self._without_search_expansions(edges, since, until)
        edges.sort(key=lambda e: e.key)
        return ServiceMap(since_ns=since_ns, until_ns=until_ns,
                          nodes=[MapNode(**n) for _, n in sorted(nodes.items())], edges=edges)

    def _without_search_expansions(self, edges: list[MapEdge], since: TimeLike, until: TimeLike) -> list[MapEdge]:
        """DNS edges with the NXDOMAIN answers to their client's search-list expansions taken out of
        the errors (common.dns_search): by design, not a failure anyone would call an error."""
        clients = {e.source for e in edges if "dns" in e.l7 and e.errors}
        if not clients:
            return edges
        _, _, window = minutes(since, until, bucket_s=60)
        expected: dict[str, int] = {}
        for namespace, workload, query, answers in self.backend.rows(
                f"SELECT namespace, workload, query, sumMerge(responses) FROM {self.layout.table('dns_1m')} "
                f"WHERE {window} AND rcode = 3 GROUP BY namespace, workload, query"):
            client = node_id(namespace, workload, "pod")
            if client in clients and is_search_expansion(query, namespace):
                expected[client] = expected.get(client, 0) + answers
        out = []
        for edge in edges:
            taken = min(edge.errors, expected.get(edge.source, 0)) if "dns" in edge.l7 else 0
            if taken:
                expected[edge.source] -= taken
                errors = edge.errors - taken
                edge = dataclasses.replace(edge, errors=errors,
                                           error_rate=errors / edge.requests if edge.requests else 0.0)
            out.append(edge)
        return out

    def service_map_changes(self, since: TimeLike, until: TimeLike,
                            namespaces: Iterable[str] | None = None) -> ServiceMapChanges:
        """The map of [since, until] and of the same-length window just before it, with the edges
        that appeared and disappeared."""
        namespaces = None if namespaces is None else list(namespaces)
        current = self.service_map(since, until, namespaces)
        length = current.until_ns - current.since_ns
        previous = self.service_map(max(current.since_ns - length, 0), current.since_ns - 1, namespaces)
        before = {e.key for e in previous.edges}
        now = {e.key for e in current.edges}
        return ServiceMapChanges(current=current, previous=previous,
                                 added=[e for e in current.edges if e.key not in before],
                                 removed=[e for e in previous.edges if e.key not in now])

    def top_talkers(self, since: TimeLike, until: TimeLike, limit: int = 10, by: str = "bytes",
                    namespaces: Iterable[str] | None = None) -> list[Talker]:
        """Client -> server pairs with the most bytes (or flows)."""
        if by not in ("bytes", "flows"):
            raise StorageError(f"top_talkers by={by!r}: expected 'bytes' or 'flows'")
        table, bucket = self._edges_table(since, until)
        _, _, window = minutes(since, until, bucket_s=bucket)
        rows = self.backend.rows(
            "SELECT client_namespace, client_workload, client_kind, server_namespace, server_workload, "
            f"server_kind, sumMerge(flows) AS f, sumMerge(bytes) AS b FROM {table} "
            f"WHERE {window}{_edge_namespaces_sql(namespaces)} GROUP BY client_namespace, "
            "client_workload, client_kind, server_namespace, server_workload, server_kind "
            f"ORDER BY {by[0]} DESC, f DESC "
            f"LIMIT {int(limit)}")
        return [Talker(node_id(a, b, c), node_id(d, e, k), f, size) for a, b, c, d, e, k, f, size in rows]

    def namespaces(self, since: TimeLike = None) -> list[str]:
        """Namespaces with flows (either end) since `since` (minute resolution), sorted."""
        since_ns = ns(since, "since") or 0
        rows = self.backend.rows(
            "SELECT DISTINCT ns FROM (SELECT arrayJoin([toString(client_namespace), "
            f"toString(server_namespace)]) AS ns FROM {self.layout.table('edges_1m')} "
            f"WHERE minute >= toDateTime({since_ns // NS // 60 * 60})) WHERE ns != '' ORDER BY ns")
        return [name for (name,) in rows]
