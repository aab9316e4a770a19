"""FlowStore: one ClickHouse database (embedded or server) — migrations and every query flowscope asks.

All SQL of flowscope lives in storage/. Queries read the aggregate tables where they can (service map,
top talkers, RED, DNS, namespaces) and the flows table for individual flows, drops, nodes and counts.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import time
from typing import Iterable, Sequence

from proto.flow import flow_pb2
from storage.backend import Backend, quote
from storage import protobuf_ingest
from storage.columns import (FLOW_COLUMNS, REBUILD_COLUMNS, STORED_COLUMNS, flows_to_columns, rebuild,
                             rebuild_row, split_uuids)
from storage.errors import StorageError
from storage.results import (DnsPoint, DnsQuery, DnsSummary, DropCount, FlowPage, MapEdge, MapNode,
                             NodeSeen, RedPoint, ServiceMap, ServiceMapChanges, Talker)
from storage.schema import (AGGREGATE_TABLES, MIGRATIONS, QUANTILES, Features, Layout, client_server,
                            migrations_table)
from storage.sql_filters import request_sql
from storage.timeutil import TimeLike, to_ns
from storage.url import StorageURL

log = logging.getLogger(__name__)
NS = 1_000_000_000
MAX_LIST_CHARS = 200_000  # of literals in one query (ClickHouse's max_query_size is 262,144 bytes)
HOURLY_FROM_S = 6 * 3600  # service maps of windows this long or longer read hourly edges
PROTOCOL_NAMES = {6: "TCP", 17: "UDP", 1: "ICMPv4", 58: "ICMPv6", 132: "SCTP", 0: ""}
L7_NAMES = {1: "dns", 2: "http", 3: "kafka"}
# Columns of the UI's flow table (FlowPage.rows); any of them can be the sort column.
TABLE_COLUMNS = ("time_ns", "uuid", "node", "verdict", "drop_reason", "direction", "is_reply",
                 "src_namespace", "src_pod", "src_workload", "src_ip", "src_port",
                 "dst_namespace", "dst_pod", "dst_workload", "dst_ip", "dst_port", "protocol",
                 "l7_proto", "l7_type", "http_method", "http_url", "http_code", "dns_query", "dns_rcode",
                 "latency_ns", "bytes_fwd", "bytes_rev")
_ENUM_NAMES = {"verdict": flow_pb2.Verdict, "drop_reason": flow_pb2.DropReason,
               "direction": flow_pb2.TrafficDirection, "l7_type": flow_pb2.L7FlowType}


@dataclasses.dataclass(frozen=True)
class EncodedFlows:
    """A batch ready for insert_encoded: protobuf envelopes (embedded engine) or columns (server)."""

    rows: int
    protobuf: bytes | None = None
    columns: dict[str, list] | None = None


def node_id(namespace: str, workload: str, kind: str) -> str:
    return f"{namespace}/{workload}" if kind == "pod" else f"{kind}:{workload}"


def _enum_name(enum, number: int) -> str:
    try:
        return enum.Name(number)
    except ValueError:
        return str(number)


def _quantiles(values) -> list[float | None]:
    values = list(values or [None, None, None])
    return [None if v is None or (isinstance(v, float) and math.isnan(v)) else float(v) for v in values]


def _in_list(column: str, values: Iterable[str]) -> str:
    return f"{column} IN ({', '.join(quote(v) for v in values)})"


class FlowStore:
    """Open with `storage.open_store(url)`. Thread-safe: the relay's writer and UI/relay query threads
    may share one store."""

    def __init__(self, url: StorageURL, backend: Backend) -> None:
        self.url = url
        self.backend = backend
        self.features = Features.for_version(backend.version)
        if hasattr(backend, "insert_protobuf"):
            self.features = dataclasses.replace(self.features, protobuf_ingest=True)
        self._ingest_schema: str | None = None  # format_schema of flows_ingest once known to exist
        self._ingest_compact = False  # flows_ingest takes CompactFlow (migration 7)
        self._migrations: set[int] | None = None  # applied migrations, read once
        if url.cluster and backend.version < (19, 0):
            # 18.x allows LowCardinality only per session; ON CLUSTER DDL runs in the other servers'
            # default profile, which refuses it.
            self.features = dataclasses.replace(self.features, low_cardinality=False)
        self.layout = Layout(url.database, self.features, url.cluster, url.retention_days)
        self.db = url.database

    # ----- schema ---------------------------------------------------------------------------------
    def migrate(self, upto: int | None = None) -> list[int]:
        """Creates the database and applies the migrations it lacks, in order (up to version `upto`:
        tests and benchmarks make stores as older releases left them); returns the versions applied
        now (empty when up to date). Safe to run any number of times."""
        on = self.layout.on_cluster
        self.backend.execute(f"CREATE DATABASE IF NOT EXISTS {self.db}{on}")
        self.backend.execute(migrations_table(self.layout))
        done = self.applied_migrations()
        applied = []
        self._migrations = None
        self._ingest_schema = None  # the ingest table may change
        for m in MIGRATIONS:
            if m.version in done or (upto is not None and m.version > upto):
                continue
            if m.run is not None:
                m.run(self.backend, self.layout)
            for statement in m.statements(self.layout):
                self.backend.execute(statement)
            self.backend.execute(
                # INSERT ... SELECT: clickhouse-driver would wait for a data block after VALUES.
                f"INSERT INTO {self.db}.schema_migrations (version, description, applied_at) SELECT "
                f"{m.version}, {quote(m.description)}, toDateTime({int(time.time())})")
            log.info("storage %s: applied migration %d (%s)", self.url.redacted(), m.version,
                     m.description)
            applied.append(m.version)
        return applied

    def applied_migrations(self) -> set[int]:
        exists = self.backend.rows(
            f"SELECT count() FROM system.tables WHERE database = {quote(self.db)} "
            "AND name = 'schema_migrations'")
        if not exists[0][0]:
            return set()
        return {v for (v,) in self.backend.rows(f"SELECT version FROM {self.db}.schema_migrations")}

    def schema_version(self) -> int:
        return max(self.applied_migrations(), default=0)

    def require_schema(self) -> None:
        latest = MIGRATIONS[-1].version
        if self.schema_version() < latest:
            raise StorageError(f"{self.url.redacted()}: schema version {self.schema_version()}, "
                               f"expected {latest}: run `flowscope storage migrate --storage URL`")

    def drop_database(self) -> None:
        self.backend.execute(f"DROP DATABASE IF EXISTS {self.db}{self.layout.on_cluster}")

    def status(self) -> dict:
        """Server version, schema version, stored flows, bytes on disk (flows table, compressed)."""
        flows = self.backend.rows(f"SELECT count() FROM {self.layout.table('flows')}")[0][0]
        parts = self.backend.rows(
            "SELECT count(), sum(bytes_on_disk), uniqExact(partition) FROM system.parts "
            f"WHERE database = {quote(self.db)} AND table = {quote(self.layout.local('flows').split('.')[1])}"
            " AND active")
        count, size, partitions = parts[0]
        return {"url": self.url.redacted(), "server_version": ".".join(map(str, self.backend.version)),
                "schema_version": self.schema_version(), "flows": flows, "bytes_on_disk": int(size or 0),
                "parts": count, "partitions": partitions}

    def enforce_retention(self, now_ns: int | None = None) -> list[str]:
        """Drops day partitions older than retention_days (all tables); returns the partitions dropped.
        Servers with TTL also expire rows by themselves; this works everywhere."""
        days = self.url.retention_days
        if not days:
            return []
        cutoff = time.strftime("%Y%m%d", time.gmtime((now_ns or time.time_ns()) // NS - days * 86400))
        dropped = []
        for name in ("flows",) + AGGREGATE_TABLES:
            local = self.layout.local(name)
            rows = self.backend.rows(
                f"SELECT DISTINCT partition FROM system.parts WHERE database = {quote(self.db)} "
                f"AND table = {quote(local.split('.')[1])} AND active")
            for (partition,) in rows:
                if str(partition) < cutoff:
                    self.backend.execute(f"ALTER TABLE {local}{self.layout.on_cluster} "
                                         f"DROP PARTITION {partition}")
                    dropped.append(f"{name}:{partition}")
        return dropped

    # ----- writing (used by FlowWriter) -------------------------------------------------------------
    def insert_columns(self, columns: dict[str, list]) -> int:
        """Inserts flows_to_columns' columns (the Python path: a server, or tools)."""
        if 9 in self._applied():
            return self.backend.insert(self.layout.table("flows"), STORED_COLUMNS, split_uuids(columns))
        return self.backend.insert(self.layout.table("flows"), FLOW_COLUMNS, columns)

    def insert_flows(self, flows: Sequence[flow_pb2.Flow], raws: Sequence[bytes]) -> int:
        """Inserts flows (`raws` = their serialized bytes): parsed by ClickHouse on the embedded engine,
        as Python-built columns on a server."""
        return self.insert_encoded(self.encode_flows(flows, raws))

    def encode_flows(self, flows: Sequence[flow_pb2.Flow], raws: Sequence[bytes]) -> EncodedFlows:
        """The Python half of insert_flows (no insert yet): the FlowWriter encodes the next batch
        while ClickHouse inserts the current one (chdb releases the GIL while it works)."""
        applied = self._applied()
        if self.features.protobuf_ingest and self._ingest_schema is None and 5 in applied:
            self._ingest_compact = 7 in applied
            self._ingest_schema = protobuf_ingest.write_schema(
                f"{self.url.path}.format_schemas",
                protobuf_ingest.COMPACT_MESSAGE if self._ingest_compact else protobuf_ingest.MESSAGE)
        if self._ingest_schema:
            return EncodedFlows(len(raws), protobuf=protobuf_ingest.encode(flows, raws, self._ingest_compact))
        return EncodedFlows(len(raws), columns=flows_to_columns(flows, raws))

    def insert_encoded(self, batch: EncodedFlows) -> int:
        if batch.protobuf is not None:
            self.backend.insert_protobuf(f"{self.db}.flows_ingest", batch.protobuf, self._ingest_schema)
            return batch.rows
        return self.insert_columns(batch.columns)

    def existing_uuids(self, uuids: Sequence[str], since_ns: int, until_ns: int) -> set[str]:
        """Which of `uuids` (flows timed within [since_ns, until_ns]) are stored already."""
        if not uuids:
            return set()
        found: set[str] = set()
        chunk: list[str] = []
        size = 0
        for i, u in enumerate(uuids):
            chunk.append(quote(u))
            size += len(chunk[-1].encode()) + 2
            # ClickHouse refuses a query text over max_query_size (256 KiB by default): 10,000 uuids
            # of 36 characters were already 400 KB, and a refused replay check rejected spooled flows.
            if size >= MAX_LIST_CHARS or i == len(uuids) - 1:
                found.update(u for (u,) in self.backend.rows(
                    f"SELECT uuid FROM {self.layout.table('flows')} WHERE time_ns BETWEEN {since_ns} AND "
                    f"{until_ns} AND uuid IN ({', '.join(chunk)})"))
                chunk, size = [], 0
        return found

    # ----- flows ------------------------------------------------------------------------------------
    def _where(self, whitelist, blacklist, since: TimeLike, until: TimeLike) -> str:
        since_ns, until_ns = to_ns(since, "since"), to_ns(until, "until")
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
        if 7 in self._applied():
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
        most batch_rows rows each, streamed (storage.arrow_flows)."""
        from storage.arrow_flows import flow_batches
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
                d[column] = _enum_name(enum, d[column])
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

    # ----- service map ----------------------------------------------------------------------------
    def _minutes(self, since: TimeLike, until: TimeLike, column: str = "minute",
                 bucket_s: int = 60) -> tuple[int, int, str]:
        since_ns, until_ns = to_ns(since, "since"), to_ns(until, "until")
        if since_ns is None or until_ns is None:
            raise StorageError("since and until are required for aggregate queries")
        if since_ns > until_ns:
            raise StorageError(f"since ({since_ns}) is after until ({until_ns})")
        start = since_ns // NS // bucket_s * bucket_s
        end = -(-until_ns // NS)
        return since_ns, until_ns, (f"{column} >= toDateTime({start}) AND {column} < toDateTime({end})")

    def _edges_table(self, since: TimeLike, until: TimeLike) -> tuple[str, int]:
        """edges_1h for windows of HOURLY_FROM_S or more (hour resolution), else edges_1m."""
        since_ns, until_ns = to_ns(since, "since"), to_ns(until, "until")
        if since_ns is not None and until_ns is not None and until_ns - since_ns >= HOURLY_FROM_S * NS \
                and 6 in self._applied():
            return self.layout.table("edges_1h"), 3600
        return self.layout.table("edges_1m"), 60

    def _applied(self) -> set[int]:
        if self._migrations is None:
            self._migrations = self.applied_migrations()
        return self._migrations

    @staticmethod
    def _namespaces_sql(namespaces: Iterable[str] | None, a: str = "src_namespace",
                        b: str = "dst_namespace") -> str:
        if namespaces is None:
            return ""
        ns = list(namespaces)
        if not ns:
            return " AND 0"
        return f" AND ({_in_list(a, ns)} OR {_in_list(b, ns)})"

    def _edge_namespaces_sql(self, namespaces: Iterable[str] | None) -> str:
        return self._namespaces_sql(namespaces, "client_namespace", "server_namespace")

    def service_map(self, since: TimeLike, until: TimeLike,
                    namespaces: Iterable[str] | None = None) -> ServiceMap:
        """Nodes and edges of [since, until] at minute resolution (the minute containing `since` is
        included; windows of 6 h or more at hour resolution). `namespaces`: edges with either end in
        one of them (None = all)."""
        table, bucket = self._edges_table(since, until)
        since_ns, until_ns, window = self._minutes(since, until, bucket_s=bucket)
        rows = self.backend.rows(
            "SELECT client_namespace, client_workload, client_kind, server_namespace, server_workload, "
            "server_kind, server_port, protocol, verdict, sumMerge(flows), sumMerge(bytes), sumMerge(requests), "
            f"sumMerge(errors), {QUANTILES.replace('(', 'Merge(', 1)}(latency), "
            "arraySlice(arraySort(groupUniqArrayMerge(server_ips)), 1, 8), groupBitOrMerge(l7_protos) "
            f"FROM {table} WHERE {window}"
            f"{self._edge_namespaces_sql(namespaces)} GROUP BY client_namespace, client_workload, client_kind, "
            "server_namespace, server_workload, server_kind, server_port, protocol, verdict")
        nodes: dict[str, dict] = {}
        edges = []
        for (sns, swl, skind, dns_, dwl, dkind, port, proto, verdict, flows, size, requests, errors,
             quantiles, ips, l7) in rows:
            source, target = node_id(sns, swl, skind), node_id(dns_, dwl, dkind)
            for nid, ns, wl, kind in ((source, sns, swl, skind), (target, dns_, dwl, dkind)):
                nodes.setdefault(nid, {"id": nid, "namespace": ns, "workload": wl, "kind": kind,
                                       "flows_in": 0, "flows_out": 0})
            nodes[source]["flows_out"] += flows
            nodes[target]["flows_in"] += flows
            p50, p95, p99 = _quantiles(quantiles)
            edges.append(MapEdge(source=source, target=target, port=port,
                                 protocol=PROTOCOL_NAMES.get(proto, str(proto)),
                                 verdict=_enum_name(flow_pb2.Verdict, verdict), flows=flows, bytes=size,
                                 requests=requests, errors=errors,
                                 error_rate=errors / requests if requests else 0.0,
                                 p50_ns=p50, p95_ns=p95, p99_ns=p99,
                                 l7=tuple(sorted(name for bit, name in L7_NAMES.items() if l7 >> bit & 1)),
                                 target_ips=tuple(sorted(ips))))
        edges.sort(key=lambda e: e.key)
        return ServiceMap(since_ns=since_ns, until_ns=until_ns,
                          nodes=[MapNode(**n) for _, n in sorted(nodes.items())], edges=edges)

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
        _, _, window = self._minutes(since, until, bucket_s=bucket)
        rows = self.backend.rows(
            "SELECT client_namespace, client_workload, client_kind, server_namespace, server_workload, "
            f"server_kind, sumMerge(flows) AS f, sumMerge(bytes) AS b FROM {table} "
            f"WHERE {window}{self._edge_namespaces_sql(namespaces)} GROUP BY client_namespace, "
            "client_workload, client_kind, server_namespace, server_workload, server_kind "
            f"ORDER BY {by[0]} DESC, f DESC "
            f"LIMIT {int(limit)}")
        return [Talker(node_id(a, b, c), node_id(d, e, k), f, size) for a, b, c, d, e, k, f, size in rows]

    def drops_by_reason(self, since: TimeLike, until: TimeLike,
                        namespaces: Iterable[str] | None = None, limit: int = 20) -> list[DropCount]:
        where = self._where((), (), since, until)
        rows = self.backend.rows(
            f"SELECT drop_reason, kernel_drop_reason, count() AS c FROM {self.layout.table('flows')} "
            f"WHERE verdict = 2 AND {where}{self._namespaces_sql(namespaces)} "
            f"GROUP BY drop_reason, kernel_drop_reason ORDER BY c DESC, drop_reason LIMIT {int(limit)}")
        return [DropCount(_enum_name(flow_pb2.DropReason, r), r, k, c) for r, k, c in rows]

    # ----- L7 -----------------------------------------------------------------------------------------
    @staticmethod
    def _workload_sql(namespace: str | None, workload: str | None) -> str:
        sql = ""
        if namespace is not None:
            sql += f" AND namespace = {quote(namespace)}"
        if workload is not None:
            sql += f" AND workload = {quote(workload)}"
        return sql

    @staticmethod
    def _step(step_s: int) -> int:
        if not isinstance(step_s, int) or step_s < 60 or step_s % 60:
            raise StorageError(f"step {step_s!r}: expected a whole number of minutes in seconds (60, 300...)")
        return step_s

    def http_red(self, since: TimeLike, until: TimeLike, step_s: int = 60, namespace: str | None = None,
                 workload: str | None = None) -> list[RedPoint]:
        """HTTP rate, errors and duration per server workload, one point per step (from responses)."""
        step = self._step(step_s)
        _, _, window = self._minutes(since, until)
        rows = self.backend.rows(
            f"SELECT intDiv(toUInt32(minute), {step}) * {step} AS t, namespace, workload, "
            "sumMerge(requests), sumMergeIf(requests, code >= 500), "
            "sumMergeIf(requests, code >= 400 AND code < 500), "
            f"{QUANTILES.replace('(', 'Merge(', 1)}(latency) FROM {self.layout.table('http_1m')} "
            f"WHERE {window}{self._workload_sql(namespace, workload)} "
            "GROUP BY t, namespace, workload ORDER BY t, namespace, workload")
        out = []
        for t, ns, wl, requests, errors, client_errors, quantiles in rows:
            p50, p95, p99 = _quantiles(quantiles)
            out.append(RedPoint(t * NS, ns, wl, requests, requests / step, errors, client_errors,
                                errors / requests if requests else 0.0, p50, p95, p99))
        return out

    def dns_summary(self, since: TimeLike, until: TimeLike, step_s: int = 60,
                    namespace: str | None = None, workload: str | None = None,
                    limit: int = 10) -> DnsSummary:
        """DNS per client workload per step, and the top queries (by count) of the window."""
        step = self._step(step_s)
        _, _, window = self._minutes(since, until)
        where = f"{window}{self._workload_sql(namespace, workload)}"
        table = self.layout.table("dns_1m")
        rows = self.backend.rows(
            f"SELECT intDiv(toUInt32(minute), {step}) * {step} AS t, namespace, workload, "
            "sumMerge(requests), sumMerge(responses), sumMergeIf(responses, rcode = 3), "
            f"sumMergeIf(responses, rcode != 0), {QUANTILES.replace('(', 'Merge(', 1)}(latency) "
            f"FROM {table} WHERE {where} GROUP BY t, namespace, workload ORDER BY t, namespace, workload")
        series = []
        for t, ns, wl, queries, responses, nx, errors, quantiles in rows:
            p50, p95, p99 = _quantiles(quantiles)
            series.append(DnsPoint(t * NS, ns, wl, queries, responses, nx, errors, p50, p95, p99))
        top = self.backend.rows(
            "SELECT query, greatest(sumMerge(requests), sumMerge(responses)) AS n, "
            "sumMergeIf(responses, rcode = 3), sumMergeIf(responses, rcode != 0) "
            f"FROM {table} WHERE {where} GROUP BY query ORDER BY n DESC, query LIMIT {int(limit)}")
        return DnsSummary(series, [DnsQuery(q, n, nx, e) for q, n, nx, e in top])

    # ----- inventory -------------------------------------------------------------------------------
    def namespaces(self, since: TimeLike = None) -> list[str]:
        """Namespaces with flows (either end) since `since` (minute resolution), sorted."""
        since_ns = to_ns(since, "since") or 0
        rows = self.backend.rows(
            "SELECT DISTINCT ns FROM (SELECT arrayJoin([toString(client_namespace), "
            f"toString(server_namespace)]) AS ns FROM {self.layout.table('edges_1m')} "
            f"WHERE minute >= toDateTime({since_ns // NS // 60 * 60})) WHERE ns != '' ORDER BY ns")
        return [ns for (ns,) in rows]

    def nodes(self, since: TimeLike = None) -> list[NodeSeen]:
        where = self._where((), (), since, None)
        rows = self.backend.rows(
            f"SELECT node, count(), min(time_ns), max(time_ns) FROM {self.layout.table('flows')} "
            f"WHERE {where} GROUP BY node ORDER BY node")
        return [NodeSeen(n, c, lo, hi) for n, c, lo, hi in rows]

    def close(self) -> None:
        self.backend.close()
