"""Queries of individual flows (the flows table): flows rebuilt exactly, counts, the UI's table pages,
drops by reason and the nodes seen. Filters are Hubble FlowFilters translated by storage.queries.filters."""

from __future__ import annotations

from typing import Iterable, Sequence

from common.timeparse import TimeLike
from proto.flow import flow_pb2
from storage.backend import quote
from storage.core import StoreCore
from storage.errors import StorageError
from storage.queries.filters import request_sql
from storage.queries.rebuild import rebuild, rebuild_row
from storage.results import DropCount, FlowPage, MapEdge, NodeSeen
from storage.schema.columns import REBUILD_COLUMNS
from storage.schema.layout import client_server
from storage.queries.window import L7_NAMES, PROTOCOL_NAMES, enum_name, namespaces_sql, ns

# Columns of the UI's flow table (FlowPage.rows); any of them can be the sort column.
TABLE_COLUMNS = ("time_ns", "uuid", "node", "verdict", "drop_reason", "direction", "is_reply",
                 "src_namespace", "src_pod", "src_workload", "src_ip", "src_port",
                 "dst_namespace", "dst_pod", "dst_workload", "dst_ip", "dst_port", "protocol",
                 "l7_proto", "l7_type", "http_method", "http_url", "http_code", "dns_query", "dns_rcode",
                 "latency_ns", "bytes_fwd", "bytes_rev")
_ENUM_NAMES = {"verdict": flow_pb2.Verdict, "drop_reason": flow_pb2.DropReason,
               "direction": flow_pb2.TrafficDirection, "l7_type": flow_pb2.L7FlowType}


class FlowQueries(StoreCore):
    def _where(self, whitelist, blacklist, since: TimeLike, until: TimeLike) -> str:
        since_ns, until_ns = ns(since, "since"), ns(until, "until")
        if since_ns is not None and until_ns is not None and since_ns > until_ns:
            raise StorageError(f"since ({since_ns}) is after until ({until_ns})")
        conds = [request_sql(whitelist, blacklist, self.features.ip_or_default)]
        if since_ns is not None:
            conds.append(f"time_ns >= {since_ns}")
        if until_ns is not None:
            conds.append(f"time_ns <= {until_ns}")
        return " AND ".join(conds)

    def query_flows(self, whitelist: Iterable[flow_pb2.FlowFilter] = (),
                    blacklist: Iterable[flow_pb2.FlowFilter] = (), since: TimeLike = None,
                    until: TimeLike = None, limit: int | None = 100,
                    first: bool = False) -> list[flow_pb2.Flow]:
        """Flows matching the filters in [since, until] (inclusive), oldest first: the first `limit`
        when `first`, else the last `limit` (like `hubble observe --first/--last`). limit None/0 = all."""
        where = self._where(whitelist, blacklist, since, until)
        order = "ASC" if first else "DESC"
        limit_sql = f" LIMIT {int(limit)}" if limit else ""
        flows = self._rebuilt(f"WHERE {where} ORDER BY time_ns {order}, uuid {order}{limit_sql}")
        return flows if first else flows[::-1]

    def _rebuilt(self, where_order_limit: str) -> list[flow_pb2.Flow]:
        """Stored flows, rebuilt exactly (raw plus the columns it left out, since migration 7)."""
        if "raw_stripped" in self._columns():
            rows = self.backend.rows(f"SELECT {', '.join(REBUILD_COLUMNS)} FROM {self.layout.table('flows')} "
                                     f"{where_order_limit}", binary=True)
            return [rebuild_row(row) for row in rows]
        rows = self.backend.rows(f"SELECT raw, time_ns, uuid FROM {self.layout.table('flows')} "
                                 f"{where_order_limit}", binary=True)
        return [rebuild(raw, t, u.decode() if isinstance(u, bytes) else u) for raw, t, u in rows]

    def flow_batches(self, columns: Sequence[str], whitelist: Iterable[flow_pb2.FlowFilter] = (),
                     blacklist: Iterable[flow_pb2.FlowFilter] = (), since: TimeLike = None,
                     until: TimeLike = None, batch_rows: int = 65_536):
        """Flows in [since, until] as Arrow RecordBatches of these flows-table columns, oldest first, at
        most batch_rows rows each, streamed (storage.queries.arrow)."""
        from storage.queries.arrow import flow_batches  # pyarrow only for those who ask
        return flow_batches(self, columns, whitelist, blacklist, since, until, batch_rows)

    def count(self, whitelist: Iterable[flow_pb2.FlowFilter] = (),
              blacklist: Iterable[flow_pb2.FlowFilter] = (), since: TimeLike = None,
              until: TimeLike = None) -> int:
        where = self._where(whitelist, blacklist, since, until)
        return self.backend.rows(f"SELECT count() FROM {self.layout.table('flows')} WHERE {where}")[0][0]

    def get_flow(self, uuid: str) -> flow_pb2.Flow | None:
        flows = self._rebuilt(f"WHERE uuid = {quote(uuid)} LIMIT 1")
        return flows[0] if flows else None

    def flows_page(self, whitelist: Iterable[flow_pb2.FlowFilter] = (),
                   blacklist: Iterable[flow_pb2.FlowFilter] = (), since: TimeLike = None,
                   until: TimeLike = None, offset: int = 0, limit: int = 50, sort: str = "time_ns",
                   descending: bool = True, edge: MapEdge | None = None,
                   node: str | None = None) -> FlowPage:
        """A page of the UI table. `edge` narrows to the flows behind a service-map edge (both
        directions of its connections), `node` to flows from or to a MapNode.id."""
        if sort not in TABLE_COLUMNS:
            raise StorageError(f"sort column {sort!r}: expected one of {', '.join(TABLE_COLUMNS)}")
        if offset < 0 or not 0 < limit <= 10_000:
            raise StorageError(f"offset={offset} limit={limit}: expected offset >= 0 and 1 <= limit <= "
                               "10000")
        where = self._where(whitelist, blacklist, since, until)
        if edge is not None:
            where += " AND " + self._edge_sql(edge)
        if node is not None:
            where += f" AND ({self._node_sql('client', node)} OR {self._node_sql('server', node)})"
        table = self.layout.table("flows")
        total = self.backend.rows(f"SELECT count() FROM {table} WHERE {where}")[0][0]
        direction = "DESC" if descending else "ASC"
        rows = self.backend.rows(
            f"SELECT {', '.join(TABLE_COLUMNS)} FROM {table} WHERE {where} "
            f"ORDER BY {sort} {direction}, time_ns {direction}, uuid LIMIT {int(limit)} OFFSET {int(offset)}")
        out = []
        for row in rows:
            d = dict(zip(TABLE_COLUMNS, row))
            for column, enum in _ENUM_NAMES.items():
                d[column] = enum_name(enum, d[column])
            d["protocol"] = PROTOCOL_NAMES.get(d["protocol"], str(d["protocol"]))
            d["l7_proto"] = L7_NAMES.get(d["l7_proto"], "")
            d["is_reply"] = {0: False, 1: True}.get(d["is_reply"])
            out.append(d)
        return FlowPage(total=total, offset=offset, rows=out)

    @staticmethod
    def _node_sql(role: str, nid: str) -> str:
        kind_part, sep, rest = nid.partition(":")
        if "/" in nid and not (sep and "/" not in kind_part):
            namespace, _, workload = nid.partition("/")
            return (f"({client_server(role, 'kind')} = 'pod' AND {client_server(role, 'namespace')} = "
                    f"{quote(namespace)} AND {client_server(role, 'workload')} = {quote(workload)})")
        return (f"({client_server(role, 'kind')} = {quote(kind_part)} AND "
                f"{client_server(role, 'workload')} = {quote(rest)})")

    def _edge_sql(self, edge: MapEdge) -> str:
        protocol = {v: k for k, v in PROTOCOL_NAMES.items()}.get(edge.protocol, 0)
        verdict = flow_pb2.Verdict.Value(edge.verdict) if edge.verdict in flow_pb2.Verdict.keys() else 0
        return (f"{self._node_sql('client', edge.source)} AND {self._node_sql('server', edge.target)} "
                f"AND {client_server('server', 'port')} = {int(edge.port)} AND protocol = {protocol} "
                f"AND verdict = {verdict}")

    def drops_by_reason(self, since: TimeLike, until: TimeLike,
                        namespaces: Iterable[str] | None = None, limit: int = 20) -> list[DropCount]:
        where = self._where((), (), since, until)
        rows = self.backend.rows(
            f"SELECT drop_reason, kernel_drop_reason, count() AS c FROM {self.layout.table('flows')} "
            f"WHERE verdict = 2 AND {where}{namespaces_sql(namespaces)} "
            f"GROUP BY drop_reason, kernel_drop_reason ORDER BY c DESC, drop_reason LIMIT {int(limit)}")
        return [DropCount(enum_name(flow_pb2.DropReason, r), r, k, c) for r, k, c in rows]


    def nodes(self, since: TimeLike = None) -> list[NodeSeen]:
        where = self._where((), (), since, None)
        rows = self.backend.rows(
            f"SELECT node, count(), min(time_ns), max(time_ns) FROM {self.layout.table('flows')} "
            f"WHERE {where} GROUP BY node ORDER BY node")
        return [NodeSeen(n, c, lo, hi) for n, c, lo, hi in rows]
