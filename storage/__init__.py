"""flowscope storage: every flow in ClickHouse (embedded chdb by default, or a server/cluster).

Open and migrate:
    open_store(url: str = "chdb:///var/lib/flowscope/db") -> FlowStore
        URLs: chdb:///dir[?database=flowscope&retention_days=N]
              clickhouse://user:pass@host:9000/db[?secure=1&verify=0&cluster=NAME&retention_days=N
                                                   &http_port=8123]  (flows go to the HTTP port)
              with cluster=NAME: write=local (insert into this server's shard only, one relay per
              shard), skip_unavailable_shards=1 (reads answer from the shards that are up)
        Raises StorageURLError (malformed URL), StorageUnavailable (server unreachable),
        StorageError (wrong credentials, chdb directory in use...), ShardUnavailable (a cluster's shard
        did not answer: a StorageUnavailable naming it) — all UserError subclasses.
    FlowStore.migrate(upto=None) -> list[int]   versions applied now (idempotent; upto: stop at a version)
    FlowStore.status() -> dict                  server_version, schema_version, flows, bytes_on_disk, ...
    FlowStore.enforce_retention(now_ns=None) -> list[str]   drops day partitions older than retention_days

Write (one writer per store per process):
    FlowWriter(store, *, batch_rows=50_000, batch_bytes=32 MiB, flush_interval=1.0, spool_dir=None,
               spool_max_bytes=1 GiB, max_pending_rows=500_000, retry_initial=0.2, retry_max=10.0,
               reject_after=5, dedup_window=200_000)
        .write(flows: Iterable[flow_pb2.Flow]) -> int    flows taken (duplicate uuids dropped); blocks
                                                         when too much is pending; SpoolFullError
        .flush(timeout=None) -> None                     all taken flows stored or spooled on disk
        .wait_stored(timeout) -> bool                    memory and spool empty
        .close(timeout=None) -> None
        .stats() -> WriterStats

Query (times: None, int ns since epoch, datetime or protobuf Timestamp; aggregates at minute resolution,
service_map/top_talkers at hour resolution for windows >= 6 h):
    query_flows(whitelist=(), blacklist=(), since=None, until=None, limit=100, first=False)
        -> list[flow_pb2.Flow]   oldest first; the last `limit` (or the first when first=True)
    count(whitelist=(), blacklist=(), since=None, until=None) -> int
    get_flow(uuid: str) -> flow_pb2.Flow | None
    flows_page(whitelist=(), blacklist=(), since=None, until=None, offset=0, limit=50, sort="time_ns",
               descending=True, edge: MapEdge | None = None, node: str | None = None) -> FlowPage
    service_map(since, until, namespaces: Iterable[str] | None = None) -> ServiceMap
    service_map_changes(since, until, namespaces=None) -> ServiceMapChanges
    top_talkers(since, until, limit=10, by="bytes" | "flows", namespaces=None) -> list[Talker]
    drops_by_reason(since, until, namespaces=None, limit=20) -> list[DropCount]
    http_red(since, until, step_s=60, namespace=None, workload=None) -> list[RedPoint]
    dns_summary(since, until, step_s=60, namespace=None, workload=None, limit=10) -> DnsSummary
    namespaces(since=None) -> list[str]
    nodes(since=None) -> list[NodeSeen]
Bad filter input raises common.filters.FilterError (a UserError), bad arguments StorageError (a bad time
StorageTimeError, also a common.timeparse.TimeError).

Inside: schema/ (layout, columns, DDL, migrations), ingest/ (columns, envelopes, insert), queries/
(flows, service map, L7, filters, rebuild), writer/ (FlowWriter, spool), store.py (FlowStore composed of
those parts), chdb_backend/server_backend (the engines).
"""

from storage.errors import ShardUnavailable, SpoolFullError, StorageError, StorageTimeError, StorageUnavailable, StorageURLError
from storage.deferred import DeferredStore
from storage.open import open_store
from storage.results import (DnsPoint, DnsQuery, DnsSummary, DropCount, FlowPage, MapEdge, MapNode,
                             NodeSeen, RedPoint, ServiceMap, ServiceMapChanges, Talker)
from storage.store import TABLE_COLUMNS, FlowStore, node_id
from storage.url import DEFAULT_URL, StorageURL, parse_url
from storage.writer import FlowWriter, WriterStats

__all__ = ["DEFAULT_URL", "DeferredStore", "DnsPoint", "DnsQuery", "DnsSummary", "DropCount", "FlowPage", "FlowStore",
           "FlowWriter", "MapEdge", "MapNode", "NodeSeen", "RedPoint", "ServiceMap", "ServiceMapChanges",
           "ShardUnavailable", "SpoolFullError", "StorageError", "StorageTimeError", "StorageURL", "StorageURLError", "StorageUnavailable",
           "TABLE_COLUMNS", "Talker", "WriterStats", "node_id", "open_store", "parse_url"]
