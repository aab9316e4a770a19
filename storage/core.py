"""StoreCore: what every part of a FlowStore shares — the URL, the backend, the server's features, the
table layout, and which migrations the database has (read once)."""

from __future__ import annotations

import dataclasses

from storage.backend import Backend
from storage.schema import admin
from storage.schema.layout import Features, Layout
from storage.url import StorageURL

NS = 1_000_000_000


class StoreCore:
    """The state the schema, ingest and query parts of a FlowStore (storage.store) share."""

    def __init__(self, url: StorageURL, backend: Backend) -> None:
        self.url = url
        self.backend = backend
        self.features = Features.for_version(backend.version)
        if hasattr(backend, "insert_protobuf"):
            self.features = dataclasses.replace(self.features, protobuf_ingest=True)
        self._ingest_schema: str | None = None  # format_schema of flows_ingest once known to exist
        self._ingest_compact = False  # flows_ingest takes CompactFlow (migration 7)
        self._migrations: set[int] | None = None  # applied migrations, read once
        self._flow_columns: set[str] | None = None  # the flows table's columns, read once
        self._native = None  # storage.ingest.native's converter, made on the first server insert
        self._own_writes = None  # FlowStore.own_writes' view of this server's shard, made once
        self._http_ok = True  # the server's HTTP interface takes inserts (storage.ingest.insert)
        if url.cluster and backend.version < (19, 0):
            # 18.x allows LowCardinality only per session; ON CLUSTER DDL runs in the other servers'
            # default profile, which refuses it.
            self.features = dataclasses.replace(self.features, low_cardinality=False)
        self.layout = Layout(url.database, self.features, url.cluster, url.retention_days,
                             write_local=url.write_local)
        self.db = url.database

    def applied_migrations(self) -> set[int]:
        return admin.applied(self.backend, self.db, self.layout.cluster)

    def _applied(self) -> set[int]:
        if self._migrations is None:
            self._migrations = self.applied_migrations()
        return self._migrations

    def _columns(self) -> set[str]:
        """The flows table's columns. In a cluster each server records only the migrations it ran
        itself, so a reader asks the table what it holds."""
        if self._flow_columns is None:
            database, name = self.layout.table("flows").split(".")
            self._flow_columns = {c for (c,) in self.backend.rows(
                f"SELECT name FROM system.columns WHERE database = '{database}' AND table = '{name}'")}
        return self._flow_columns


    def close(self) -> None:
        if self._native is not None:
            self._native.close()
        self.backend.close()
