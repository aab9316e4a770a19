"""The schema: what the server supports, the tables and views, and versioned idempotent migrations.

Tables (names queries use; with a cluster these are Distributed tables over `<name>_local`):
- flows: one row per flow.Flow (columns from storage.columns + `raw` protobuf: since migration 7 only
  what the columns cannot rebuild, see storage.protobuf_ingest), ReplacingMergeTree
  ordered by (hour, source namespace, source workload, time, uuid) so a re-inserted uuid collapses.
  Migration 9 makes it again (storage.flows_v9): uuid stored as UUID (text fallback), ts an ALIAS,
  ordered by (hour, source namespace and workload, destination namespace and workload, time, uuid).
- edges_1m: service-map edges per minute (client workload -> server workload, port, protocol, verdict).
- http_1m: HTTP responses per server workload, method and status per minute (RED).
- dns_1m: DNS per client workload, query and rcode per minute.
The three aggregates are filled by materialized views on every insert into flows.
"""

from __future__ import annotations

import dataclasses
from typing import Callable

from storage.backend import quote
from storage.columns import COMPACT_COLUMNS, FLOW_COLUMNS


@dataclasses.dataclass(frozen=True)
class Features:
    """What the connected ClickHouse can do (Debian's 18.16 has none of the optional parts)."""

    version: tuple[int, ...]
    low_cardinality: bool
    codecs: bool
    ttl: bool
    datetime64: bool
    ip_or_default: bool  # IPv4StringToNumOrDefault(): newer servers throw on a bad address
    protobuf_ingest: bool = False  # the embedded engine parses flows itself (storage.protobuf_ingest)

    @classmethod
    def for_version(cls, version: tuple[int, ...]) -> "Features":
        return cls(version=version, low_cardinality=version >= (18, 16), codecs=version >= (19, 1),
                   ttl=version >= (19, 6), datetime64=version >= (20, 1),
                   ip_or_default=version >= (22, 3))


@dataclasses.dataclass(frozen=True)
class Layout:
    """Where the tables live: database, optional cluster, retention."""

    database: str
    features: Features
    cluster: str = ""
    retention_days: int = 0

    def table(self, name: str) -> str:
        """The table queries read (Distributed when clustered)."""
        return f"{self.database}.{name}"

    def local(self, name: str) -> str:
        """The table that holds the data on this server."""
        return f"{self.database}.{name}_local" if self.cluster else f"{self.database}.{name}"

    @property
    def on_cluster(self) -> str:
        return f" ON CLUSTER {self.cluster}" if self.cluster else ""

    def engine(self, name: str, kind: str) -> str:
        if not self.cluster:
            return f"{kind}()"
        path = quote(f"/clickhouse/tables/{{shard}}/{self.database}/{name}_local")
        return f"Replicated{kind}({path}, '{{replica}}')"

    def column_type(self, column) -> str:
        t = f"LowCardinality({column.type})" if column.low_cardinality and self.features.low_cardinality \
            else column.type
        return f"{t} {column.codec}" if column.codec and self.features.codecs else t


# The flow seen from the connection's point of view: replies and L7 responses travel server -> client.
REVERSED = "(is_reply = 1 OR l7_type = 2)"


def client_server(side: str, column: str) -> str:
    """SQL for the client ("src" role) or server side of a flow's `column` (e.g. namespace)."""
    first, second = ("dst", "src") if side == "client" else ("src", "dst")
    return f"if({REVERSED}, {first}_{column}, {second}_{column})"


def _key(layout: "Layout", expr: str) -> str:
    # 18.x does not convert String to a LowCardinality column when a view inserts.
    return f"toLowCardinality({expr})" if layout.features.low_cardinality else expr


ERROR = ("(l7_type = 2 AND ((l7_proto = 2 AND http_code >= 500) OR (l7_proto = 1 AND dns_rcode != 0)"
         " OR (l7_proto = 3 AND kafka_error_code != 0)))")
QUANTILES = "quantilesTDigest(0.5, 0.95, 0.99)"
SUM = "AggregateFunction(sum, UInt64)"


def _retention(layout: Layout, column: str) -> str:
    if layout.retention_days and layout.features.ttl:
        return f" TTL {column} + INTERVAL {int(layout.retention_days)} DAY"
    return ""


def _create(layout: Layout, name: str, columns: str, engine_kind: str, order_by: str,
            time_column: str, distributed_columns: str = "", sharding: str = "") -> list[str]:
    statements = [
        f"CREATE TABLE IF NOT EXISTS {layout.local(name)}{layout.on_cluster} ({columns}) "
        f"ENGINE = {layout.engine(name, engine_kind)} PARTITION BY toYYYYMMDD({time_column}) "
        f"ORDER BY ({order_by}){_retention(layout, time_column)} SETTINGS index_granularity = 8192"]
    if layout.cluster:
        statements.append(
            f"CREATE TABLE IF NOT EXISTS {layout.table(name)}{layout.on_cluster} "
            f"{f'({distributed_columns})' if distributed_columns else f'AS {layout.local(name)}'} ENGINE = Distributed({layout.cluster}, {layout.database}, {name}_local, "
            f"{sharding or ('cityHash64(uuid)' if name == 'flows' else 'rand()')})")
    return statements


def flows_table(layout: Layout, columns=FLOW_COLUMNS) -> list[str]:
    cols = [f"{c.name} {layout.column_type(c)}" for c in columns]
    aliases = ["time DateTime64(9) ALIAS fromUnixTimestamp64Nano(toInt64(time_ns))"] \
        if layout.features.datetime64 else []
    ts = "ts DateTime {} toDateTime(intDiv(time_ns, 1000000000))"
    # The Distributed table computes ts as an ALIAS: a MATERIALIZED ts there would be sent to the
    # shards, which refuse to be given a MATERIALIZED column.
    return _create(layout, "flows", ", ".join(cols + [ts.format("MATERIALIZED")] + aliases),
                   "ReplacingMergeTree", "toStartOfHour(ts), src_namespace, src_workload, time_ns, uuid",
                   "ts", distributed_columns=", ".join(cols + [ts.format("ALIAS")] + aliases))


def _lc(layout: Layout) -> str:
    return "LowCardinality(String)" if layout.features.low_cardinality else "String"


def _view(layout: Layout, name: str, target: str, select: str) -> list[str]:
    return [f"CREATE MATERIALIZED VIEW IF NOT EXISTS {layout.database}.{name}{layout.on_cluster} "
            f"TO {layout.local(target)} AS {select} FROM {layout.local('flows')}"]


def edges(layout: Layout, name: str = "edges_1m", bucket: str = "toStartOfMinute", ts: str = "ts") -> list[str]:
    """Service-map edges per time bucket; the `minute` column holds the bucket start (a minute in
    edges_1m, an hour in edges_1h, which long windows read). `ts`: SQL of the flow's time in seconds
    (a view cannot read an ALIAS column on 18.x: since migration 9, ts is one)."""
    lc = _lc(layout)
    keys = ["minute DateTime"] + [f"{role}_{c} {lc}" for role in ("client", "server")
                                  for c in ("namespace", "workload", "kind")]
    cols = keys + ["server_port UInt16", "protocol UInt8", "verdict UInt8", f"flows {SUM}",
                   f"bytes {SUM}", f"requests {SUM}", f"errors {SUM}",
                   f"latency AggregateFunction({QUANTILES}, UInt64)",
                   # Server addresses only for non-pod servers (world, host...), and L7 protocols as a
                   # bit set: sets of values per edge-minute made the map query 2.5x slower.
                   "server_ips AggregateFunction(groupUniqArray, String)",
                   "l7_protos AggregateFunction(groupBitOr, UInt8)"]
    order = ("minute, client_namespace, client_workload, server_namespace, server_workload, server_port, "
             "protocol, verdict, client_kind, server_kind")
    select = (
        f"SELECT {bucket}({ts}) AS minute, "
        + ", ".join(f"{_key(layout, client_server(role, c))} AS {role}_{c}" for role in ("client", "server")
                    for c in ("namespace", "workload", "kind"))
        + f", toUInt16({client_server('server', 'port')}) AS server_port, protocol, verdict, "
        "sumState(toUInt64(1)) AS flows, sumState(toUInt64(bytes_fwd + bytes_rev)) AS bytes, "
        "sumState(toUInt64(l7_type = 2)) AS requests, "
        f"sumState(toUInt64({ERROR})) AS errors, "
        f"{QUANTILES.replace('(', 'StateIf(', 1)}(latency_ns, l7_type = 2 AND latency_ns > 0) AS latency, "
        f"groupUniqArrayStateIf({client_server('server', 'ip')}, {client_server('server', 'kind')} != 'pod')"
        " AS server_ips, groupBitOrState(toUInt8(bitShiftLeft(1, l7_proto))) AS l7_protos"
        f" FROM {layout.local('flows')} GROUP BY minute, client_namespace, client_workload, client_kind, "
        "server_namespace, server_workload, server_kind, server_port, protocol, verdict")
    return (_create(layout, name, ", ".join(cols), "AggregatingMergeTree", order, "minute")
            + [f"CREATE MATERIALIZED VIEW IF NOT EXISTS {layout.database}.{name}_mv{layout.on_cluster}"
               f" TO {layout.local(name)} AS {select}"])


def http(layout: Layout, ts: str = "ts") -> list[str]:
    lc = _lc(layout)
    cols = ["minute DateTime", f"namespace {lc}", f"workload {lc}", f"method {lc}", "code UInt16",
            f"requests {SUM}", f"latency AggregateFunction({QUANTILES}, UInt64)"]
    select = (
        f"SELECT toStartOfMinute({ts}) AS minute, {_key(layout, client_server('server', 'namespace'))} AS "
        f"namespace, {_key(layout, client_server('server', 'workload'))} AS workload, "
        f"{_key(layout, 'http_method')} AS method, http_code AS code, "
        f"sumState(toUInt64(1)) AS requests, "
        f"{QUANTILES.replace('(', 'StateIf(', 1)}(latency_ns, latency_ns > 0) AS latency "
        f"FROM {layout.local('flows')} WHERE l7_proto = 2 AND l7_type = 2 "
        "GROUP BY minute, namespace, workload, method, code")
    return (_create(layout, "http_1m", ", ".join(cols), "AggregatingMergeTree",
                    "minute, namespace, workload, method, code", "minute")
            + [f"CREATE MATERIALIZED VIEW IF NOT EXISTS {layout.database}.http_1m_mv{layout.on_cluster}"
               f" TO {layout.local('http_1m')} AS {select}"])


def dns(layout: Layout, ts: str = "ts") -> list[str]:
    lc = _lc(layout)
    cols = ["minute DateTime", f"namespace {lc}", f"workload {lc}", "query String", "rcode UInt16",
            f"requests {SUM}", f"responses {SUM}", f"latency AggregateFunction({QUANTILES}, UInt64)"]
    select = (
        f"SELECT toStartOfMinute({ts}) AS minute, {_key(layout, client_server('client', 'namespace'))} AS "
        f"namespace, {_key(layout, client_server('client', 'workload'))} AS workload, dns_query AS query, "
        "if(l7_type = 2, dns_rcode, 0) AS rcode, "
        "sumState(toUInt64(l7_type = 1)) AS requests, sumState(toUInt64(l7_type = 2)) AS responses, "
        f"{QUANTILES.replace('(', 'StateIf(', 1)}(latency_ns, l7_type = 2 AND latency_ns > 0) AS latency "
        f"FROM {layout.local('flows')} WHERE l7_proto = 1 "
        "GROUP BY minute, namespace, workload, query, rcode")
    return (_create(layout, "dns_1m", ", ".join(cols), "AggregatingMergeTree",
                    "minute, namespace, workload, query, rcode", "minute")
            + [f"CREATE MATERIALIZED VIEW IF NOT EXISTS {layout.database}.dns_1m_mv{layout.on_cluster}"
               f" TO {layout.local('dns_1m')} AS {select}"])


@dataclasses.dataclass(frozen=True)
class Migration:
    version: int
    description: str
    statements: Callable[[Layout], list[str]]
    # A migration that must look before it acts (copying a table, resuming after a crash) runs
    # itself: (backend, layout) -> None, instead of fixed statements.
    run: Callable[[object, Layout], None] | None = None


# Append only: a released migration never changes; a new need is a new version.
MIGRATIONS: tuple[Migration, ...] = (
    Migration(1, "flows table", flows_table),
    Migration(2, "service-map edges per minute", edges),
    Migration(3, "HTTP RED per workload per minute", http),
    Migration(4, "DNS per workload per minute", dns),
    Migration(5, "protobuf ingest table (embedded engine)", lambda layout: _protobuf_ingest(layout)),
    Migration(6, "service-map edges per hour (long windows)",
              lambda layout: edges(layout, "edges_1h", "toStartOfHour")),
    Migration(7, "compact flows: raw without what columns rebuild, ZSTD codecs",
              lambda layout: compact_flows(layout)),
    Migration(8, "compact flows: l4 and l7 out of raw too", lambda layout: _compact_l4_l7(layout)),
    Migration(9, "flows table again: uuid as UUID, ts an ALIAS, destination in the sort key",
              lambda layout: [], lambda backend, layout: _flows_v9(backend, layout)),
)


def compact_flows(layout: Layout) -> list[str]:
    """Migration 7: the columns that let `raw` leave out endpoints, IP and counters (and l4, l7 since
    migration 8; old rows keep a whole raw: raw_stripped = 0), and ZSTD (T64 for integers) on every
    column of the flows table that had the default LZ4 — 98.5 -> 76 bytes per flow on its own."""
    local, on = layout.local("flows"), layout.on_cluster
    statements = [f"ALTER TABLE {local}{on} "
                  + ", ".join(f"ADD COLUMN {c.name} {layout.column_type(c)}" for c in COMPACT_COLUMNS)]
    if layout.cluster:
        # 18.x refuses ALTER ON CLUSTER of a Distributed table over replicated shards: make it again.
        statements += [f"DROP TABLE IF EXISTS {layout.table('flows')}{on}",
                       flows_table(layout, FLOW_COLUMNS + COMPACT_COLUMNS)[1]]
    if layout.features.codecs:
        plain = dataclasses.replace(layout, features=dataclasses.replace(layout.features, codecs=False))
        statements.append(f"ALTER TABLE {local}{on} " + ", ".join(
            f"MODIFY COLUMN {c.name} {plain.column_type(c)} "
            f"CODEC({'T64, ' if c.type.startswith(('UInt', 'Int')) else ''}ZSTD(1))"
            for c in FLOW_COLUMNS if not c.codec))
    from storage.protobuf_ingest import CUT_7, compact_statements  # it needs this module's Layout
    return statements + compact_statements(layout, CUT_7)


def _compact_l4_l7(layout: Layout) -> list[str]:
    from storage.protobuf_ingest import compact_statements
    return compact_statements(layout)


def _flows_v9(backend, layout: Layout) -> None:
    from storage.flows_v9 import migrate  # it needs this module's Layout and views
    migrate(backend, layout)


def _protobuf_ingest(layout: Layout) -> list[str]:
    from storage.protobuf_ingest import statements  # it needs this module's Layout
    return statements(layout)
AGGREGATE_TABLES = ("edges_1m", "edges_1h", "http_1m", "dns_1m")


def migrations_table(layout: Layout) -> str:
    # Plain MergeTree on every server (also in a cluster: each server records what it applied).
    return (f"CREATE TABLE IF NOT EXISTS {layout.database}.schema_migrations{layout.on_cluster} "
            "(version UInt32, description String, applied_at DateTime) "
            "ENGINE = MergeTree() ORDER BY version")
