"""FlowStore: one ClickHouse database (embedded or server), composed of its parts, one job each:
storage.core (shared state), storage.schema.admin (migrations, status, retention), storage.ingest.insert
(writing), storage.queries.flows, .service_map and .l7 (reading). All SQL of flowscope lives in storage/.
"""

from __future__ import annotations

import dataclasses

from storage.cluster import shard_status
from storage.errors import StorageError
from storage.ingest.insert import EncodedFlows, Ingest
from storage.queries.flows import TABLE_COLUMNS, FlowQueries
from storage.queries.l7 import L7Queries
from storage.queries.service_map import ServiceMapQueries, node_id
from storage.schema import LATEST, admin

__all__ = ["EncodedFlows", "FlowStore", "TABLE_COLUMNS", "node_id"]


class FlowStore(Ingest, FlowQueries, ServiceMapQueries, L7Queries):
    """Open with `storage.open_store(url)`. Thread-safe: the relay's writer and UI/relay query threads
    may share one store."""

    def migrate(self, upto: int | None = None) -> list[int]:
        """Creates the database and applies the migrations it lacks, in order (up to version `upto`:
        tests and benchmarks make stores as older releases left them); returns the versions applied
        now (empty when up to date). Safe to run any number of times."""
        self._migrations = self._flow_columns = None
        self._ingest_schema = None  # the ingest table may change
        return admin.migrate(self.backend, self.layout, self.url.redacted(), upto)

    def own_writes(self) -> "FlowStore":
        """The store that answers "what has this store's writer stored": itself, or with write=local
        its server's own shard (where a relay resumes its nodes: their flows are all on that shard, and
        it answers while another shard is down). Shares this store's connections: close this one."""
        if not self.layout.write_local:
            return self
        if self._own_writes is None:
            view = FlowStore(self.url, self.backend)
            view.layout = dataclasses.replace(self.layout, read_local=True)
            self._own_writes = view
        return self._own_writes

    def schema_version(self) -> int:
        return max(self.applied_migrations(), default=0)

    def require_schema(self) -> None:
        if self.schema_version() < LATEST:
            raise StorageError(f"{self.url.redacted()}: schema version {self.schema_version()}, "
                               f"expected {LATEST}: run `flowscope storage migrate --storage URL`")

    def drop_database(self) -> None:
        self.backend.execute(f"DROP DATABASE IF EXISTS {self.db}{self.layout.on_cluster}")

    def status(self) -> dict:
        """Server version, schema version, stored flows, bytes on disk (flows table, compressed); in a
        cluster each shard, up or unreachable (flows then counts the shards that are up, with
        skip_unavailable_shards=1; without it a shard down fails this as any read)."""
        status = {"url": self.url.redacted(), **admin.status(self.backend, self.layout),
                  "schema_version": self.schema_version()}
        if self.layout.cluster:
            status["shards"] = shard_status(self.backend, self.layout.cluster)
        return status

    def enforce_retention(self, now_ns: int | None = None) -> list[str]:
        """Drops day partitions older than retention_days (all tables); returns the partitions dropped.
        Servers with TTL also expire rows by themselves; this works everywhere."""
        return admin.enforce_retention(self.backend, self.layout, self.url.retention_days, now_ns)
