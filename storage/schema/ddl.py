"""The schema: what the server supports, the tables and views, and versioned idempotent migrations.

Tables (names queries use; with a cluster these are Distributed tables over `<name>_local`):
- flows: one row per flow.Flow (columns from storage.schema.columns + `raw` protobuf: since migration 7 only
  what the columns cannot rebuild, see storage.schema.ingest_view), ReplacingMergeTree
  ordered by (hour, source namespace, source workload, time, uuid) so a re-inserted uuid collapses.
  Migration 9 makes it again (storage.schema.migrations.flows_v9): uuid stored as UUID (text fallback), ts an ALIAS,
  ordered by (hour, source namespace and workload, destination namespace and workload, time, uuid).
- edges_1m: service-map edges per minute (client workload -> server workload, port, protocol, verdict).
- http_1m: HTTP responses per server workload, method and status per minute (RED).
- dns_1m: DNS per client workload, query and rcode per minute.
The three aggregates are filled by materialized views on every insert into flows.
Migrations (storage.schema.migrations) are made of these statements.
"""

from __future__ import annotations

from storage.schema.columns import FLOW_COLUMNS
from storage.schema.layout import Layout, client_server


def _key(layout: "Layout", expr: str) -> str:
    # 18.x does not convert String to a LowCardinality column when a view inserts.
    return f"toLowCardinality({expr})" if layout.features.low_cardinality else expr


ERROR = ("(l7_type = 2 AND ((l7_proto = 2 AND http_code >= 500) OR (l7_proto = 1 AND dns_rcode != 0)"
         " OR (l7_proto = 3 AND kafka_error_code != 0)))")
QUANTILES = "quantilesTDigest(0.5, 0.95, 0.99)"
QUANTILES_MERGE = QUANTILES.replace("(", "Merge(", 1)  # reads the states the views wrote
SUM = "AggregateFunction(sum, UInt64)"


def _retention(layout: Layout, column: str) -> str:
    if layout.retention_days and layout.features.ttl:
        return f" TTL {column} + INTERVAL {int(layout.retention_days)} DAY"
    return ""


def create_table(layout: Layout, name: str, columns: str, engine_kind: str, order_by: str,
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
    return create_table(layout, "flows", ", ".join(cols + [ts.format("MATERIALIZED")] + aliases),
                   "ReplacingMergeTree", "toStartOfHour(ts), src_namespace, src_workload, time_ns, uuid",
                   "ts", distributed_columns=", ".join(cols + [ts.format("ALIAS")] + aliases))


def _lc(layout: Layout) -> str:
    return "LowCardinality(String)" if layout.features.low_cardinality else "String"


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
    return (create_table(layout, name, ", ".join(cols), "AggregatingMergeTree", order, "minute")
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
    return (create_table(layout, "http_1m", ", ".join(cols), "AggregatingMergeTree",
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
    return (create_table(layout, "dns_1m", ", ".join(cols), "AggregatingMergeTree",
                    "minute, namespace, workload, query, rcode", "minute")
            + [f"CREATE MATERIALIZED VIEW IF NOT EXISTS {layout.database}.dns_1m_mv{layout.on_cluster}"
               f" TO {layout.local('dns_1m')} AS {select}"])


AGGREGATE_TABLES = ("edges_1m", "edges_1h", "http_1m", "dns_1m")


def migrations_table(layout: Layout) -> str:
    # Plain MergeTree on every server (also in a cluster: each server records what it applied).
    return (f"CREATE TABLE IF NOT EXISTS {layout.database}.schema_migrations{layout.on_cluster} "
            "(version UInt32, description String, applied_at DateTime) "
            "ENGINE = MergeTree() ORDER BY version")
