"""Applying the migrations, and what an operator asks of a database: status and retention."""

from __future__ import annotations

import logging
import time

from storage.backend import Backend, quote
from storage.schema.ddl import AGGREGATE_TABLES, migrations_table
from storage.schema.layout import Layout
from storage.schema.migrations import MIGRATIONS

log = logging.getLogger(__name__)
NS = 1_000_000_000


def migrate(backend: Backend, layout: Layout, name: str, upto: int | None = None) -> list[int]:
    """Creates the database and applies the migrations it lacks, in order (up to version `upto`);
    returns the versions applied now. `name`: the store as logs name it (URL without password)."""
    db, on = layout.database, layout.on_cluster
    done = applied(backend, db, layout.cluster)
    wanted = [m for m in MIGRATIONS if m.version not in done and (upto is None or m.version <= upto)]
    if not wanted:
        # Up to date: no DDL at all. ON CLUSTER DDL waits for every server of the cluster (180 s, then
        # fails), so a relay restarting while another shard is down would not start.
        return []
    backend.execute(f"CREATE DATABASE IF NOT EXISTS {db}{on}")
    backend.execute(migrations_table(layout))
    versions = []
    for m in wanted:
        if m.run is not None:
            m.run(backend, layout)
        for statement in m.statements(layout):
            backend.execute(statement)
        backend.execute(
            # INSERT ... SELECT: clickhouse-driver would wait for a data block after VALUES.
            f"INSERT INTO {db}.schema_migrations (version, description, applied_at) SELECT "
            f"{m.version}, {quote(m.description)}, toDateTime({int(time.time())})")
        log.info("storage %s: applied migration %d (%s)", name, m.version, m.description)
        versions.append(m.version)
    return versions


def applied(backend: Backend, database: str, cluster: str = "") -> set[int]:
    """The migrations recorded in `database` (none before the first migrate). In a cluster each server
    records the migrations run from it, and every one ran ON CLUSTER: the cluster's records together
    (a second relay migrating from another server would otherwise repeat ALTERs that cannot repeat)."""
    exists = backend.rows(f"SELECT count() FROM system.tables WHERE database = {quote(database)} "
                          "AND name = 'schema_migrations'")
    if not exists[0][0]:
        return set()
    source = (f"cluster({quote(cluster)}, {database}, schema_migrations) SETTINGS skip_unavailable_shards = 1"
              if cluster else f"{database}.schema_migrations")
    return {v for (v,) in backend.rows(f"SELECT version FROM {source}")}


def status(backend: Backend, layout: Layout) -> dict:
    """Server version, stored flows, bytes on disk (flows table, compressed), parts and partitions."""
    db = layout.database
    flows = backend.rows(f"SELECT count() FROM {layout.table('flows')}")[0][0]
    parts = backend.rows(
        "SELECT count(), sum(bytes_on_disk), uniqExact(partition) FROM system.parts "
        f"WHERE database = {quote(db)} AND table = {quote(layout.local('flows').split('.')[1])} AND active")
    count, size, partitions = parts[0]
    return {"server_version": ".".join(map(str, backend.version)), "flows": flows,
            "bytes_on_disk": int(size or 0), "parts": count, "partitions": partitions}


def enforce_retention(backend: Backend, layout: Layout, days: int, now_ns: int | None = None) -> list[str]:
    """Drops day partitions older than `days` (all tables); returns the partitions dropped."""
    if not days:
        return []
    cutoff = time.strftime("%Y%m%d", time.gmtime((now_ns or time.time_ns()) // NS - days * 86400))
    dropped = []
    for name in ("flows",) + AGGREGATE_TABLES:
        local = layout.local(name)
        rows = backend.rows(
            f"SELECT DISTINCT partition FROM system.parts WHERE database = {quote(layout.database)} "
            f"AND table = {quote(local.split('.')[1])} AND active")
        for (partition,) in rows:
            if str(partition) < cutoff:
                backend.execute(f"ALTER TABLE {local}{layout.on_cluster} DROP PARTITION {partition}")
                dropped.append(f"{name}:{partition}")
    return dropped
