"""Migration 9: the flows table made again, since a sort key and column types are fixed at CREATE.

- uuid is stored as `uuid_bin UUID` (16 bytes, and a collector's per-process prefix + counter uuids
  compress to ~3) when it is a canonical UUID text, else as text in `uuid_str` (uuid_bin zero);
  `uuid` is an ALIAS of the two, so every query and filter reads it as before.
- ts is an ALIAS of time_ns (it was a stored column: 2.5-2.9 bytes per flow); partition key, sort key
  and TTL use the same expression. Views compute it too: 18.x views cannot read an ALIAS column.
- the sort key orders by destination namespace and workload after the source's: rows of one
  connection's flows sit together, and the destination columns compress like the source's.

The copy is resumable: the aggregate and ingest views are dropped first (they are recreated on the new
table at the end), the new table is filled from scratch by INSERT ... SELECT, and only when it holds as
many rows as the old one are the names swapped (RENAME) and the old table dropped. A crash at any point
leaves either the old table whole under its name (the copy starts over) or the new one.
"""

from __future__ import annotations

from storage.errors import StorageError
from storage.schema import columns
from storage.schema.ddl import create_table, dns, edges, http
from storage.schema.ingest_view import compact_statements
from storage.schema.layout import Layout

TS = "toDateTime(intDiv(time_ns, 1000000000))"
SORT_KEY = (f"toStartOfHour({TS}), src_namespace, src_workload, dst_namespace, dst_workload, time_ns, "
            "uuid_bin, uuid_str")
UUID = "if(uuid_str = '', toString(uuid_bin), uuid_str)"
# ZSTD level 3 on every column (T64 first for integers): 2.5-3 bytes per flow less than level 1, at
# no measurable ingest cost (bench/storage.py, docs/benchmarks.md).
_ZSTD = "ZSTD(3)"
_INT_CODEC = f"CODEC(T64, {_ZSTD})"
VIEWS = ("edges_1m_mv", "edges_1h_mv", "http_1m_mv", "dns_1m_mv")


def stored_columns() -> tuple[columns.Column, ...]:
    """The physical columns of the new table, each with its codec."""
    out = []
    for c in columns.STORED_COLUMNS + columns.COMPACT_COLUMNS:
        if c.name == "time_ns" or (not c.codec and c.type.startswith(("UInt", "Int"))):
            codec = _INT_CODEC  # time_ns is not monotonic inside a sort group any more: T64 beat Delta
        else:
            codec = f"CODEC({_ZSTD})" if not c.codec else c.codec.replace("ZSTD(1)", _ZSTD)
        out.append(columns.Column(c.name, c.type, c.low_cardinality, codec))
    return tuple(out)


def table_statements(layout: Layout, name: str) -> list[str]:
    """CREATE the new flows table as `name` (its Distributed table too in a cluster)."""
    cols = [f"{c.name} {layout.column_type(c)}" for c in stored_columns()]
    aliases = [f"ts DateTime ALIAS {TS}", f"uuid String ALIAS {UUID}"]
    if layout.features.datetime64:
        aliases.append("time DateTime64(9) ALIAS fromUnixTimestamp64Nano(toInt64(time_ns))")
    all_columns = ", ".join(cols + aliases)
    return create_table(layout, name, all_columns, "ReplacingMergeTree", SORT_KEY, TS,
                   distributed_columns=all_columns, sharding=f"cityHash64({UUID})")


def view_statements(layout: Layout) -> list[str]:
    """The aggregate views, on the new flows table (the last statement of each builder)."""
    return [edges(layout, ts=TS)[-1], edges(layout, "edges_1h", "toStartOfHour", ts=TS)[-1],
            http(layout, ts=TS)[-1], dns(layout, ts=TS)[-1]]


def copy_select() -> tuple[str, str]:
    """(column list, SELECT list) copying the old table's rows into the new one."""
    names = [c.name for c in stored_columns()]
    canonical = f"match(uuid, '{columns.CANONICAL_UUID}')"
    exprs = {"uuid_bin": f"toUUID(if({canonical}, uuid, '{columns.ZERO_UUID}'))",
             "uuid_str": f"if({canonical}, '', uuid)"}
    return ", ".join(names), ", ".join(exprs.get(n, n) for n in names)


def _short(qualified: str) -> str:
    return qualified.split(".", 1)[1]


def migrate(backend, layout: Layout) -> None:
    db, on = layout.database, layout.on_cluster
    flows, new, old = layout.local("flows"), layout.local("flows_v9"), layout.local("flows_v8")
    for view in VIEWS:
        backend.execute(f"DROP TABLE IF EXISTS {db}.{view}{on}")
    backend.execute(f"DROP TABLE IF EXISTS {db}.flows_ingest_mv")  # embedded only, never clustered
    tables = {name for (name,) in backend.rows(
        f"SELECT name FROM system.tables WHERE database = '{db}'")}
    if _short(flows) not in tables:  # a crash between the two renames below
        backend.execute(f"RENAME TABLE {new} TO {flows}{on}")
    elif not backend.rows(f"SELECT count() FROM system.columns WHERE database = '{db}' AND "
                          f"table = '{_short(flows)}' AND name = 'uuid_bin'")[0][0]:
        _copy(backend, layout)
    if layout.cluster:  # the Distributed tables: made again over the new local table
        for name in ("flows", "flows_v9"):
            backend.execute(f"DROP TABLE IF EXISTS {layout.table(name)}{on}")
        backend.execute(table_statements(layout, "flows")[1])
    backend.execute(f"DROP TABLE IF EXISTS {old}{on}")
    for statement in view_statements(layout) + compact_statements(layout, uuid_split=True):
        backend.execute(statement)


def _copy(backend, layout: Layout) -> None:
    """Fills a new table from the old one (from scratch: a partial copy of a crashed run is dropped)
    and swaps the names once every row is there."""
    on = layout.on_cluster
    flows, new, old = layout.local("flows"), layout.local("flows_v9"), layout.local("flows_v8")
    for name in (layout.table("flows_v9"), new) if layout.cluster else (new,):
        backend.execute(f"DROP TABLE IF EXISTS {name}{on}")
    for statement in table_statements(layout, "flows_v9"):
        backend.execute(statement)
    names, select = copy_select()
    backend.execute(f"INSERT INTO {layout.table('flows_v9')} ({names}) SELECT {select} "
                    f"FROM {layout.table('flows')}")
    counts = [backend.rows(f"SELECT count() FROM {layout.table(n)}")[0][0] for n in ("flows", "flows_v9")]
    if counts[0] != counts[1]:
        raise StorageError(f"{layout.database}: migration 9 copied {counts[1]} of {counts[0]} flows; the "
                           "old table is kept: run the migration again")
    backend.execute(f"RENAME TABLE {flows} TO {old}, {new} TO {flows}{on}")
