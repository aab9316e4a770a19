"""Migration 10: the embedded engine's ingest (CompactFlow envelopes -> the flows table, cutting raw as
migration 8 does; storage.schema.ingest_view) as a chain of materialized views through Null tables,
each view one step of the SQL.

Why: as one view, ClickHouse's analyzer inlines the steps' subqueries, so every expression that names
another step's column carries that column's whole expression (the plan's column names alone were 39 MB):
0.36 s of CPU per insert before the first row, and ~4 us per row more than the same SQL without the cut.
A view over a table sees the step before as plain columns: 0.16 s per insert and the cut at about the
cost of keeping raw whole (bench/storage.py --targets, docs/benchmarks.md). Keeping raw whole instead
was measured too: +24 bytes per flow on disk for the benchmark's flows (23 -> 48), so the cut stays.

flows_ingest -> flows_ingest_1 (endpoint kinds, field sizes and exactness) -> flows_ingest_2 (where
each field sits) -> flows_ingest_3 (what is cut) -> flows_ingest_4 (raw as kept) -> flows, whose view
keeps the name flows_ingest_mv (migrations that make the flows table again drop it by that name).
"""

from __future__ import annotations

from storage.schema.ingest_view import KINDS_STAGE, latest_parts, typed_columns
from storage.schema.layout import Layout

STEPS = 4


def _steps() -> tuple[list[str], str]:
    """(the SQL each step adds to its input's columns, the final SELECT list)."""
    select, flow_columns, (sizes, offsets, cuts, kept, uuid) = latest_parts()
    return [f"{KINDS_STAGE}, {sizes}", offsets, cuts, f"{kept}, {uuid}"], typed_columns(select, flow_columns)


def statements(layout: Layout) -> list[str]:
    """Drops the single view (and any chain of an interrupted run), then makes the chain from its end,
    so no step ever writes into a table nothing reads yet."""
    if not layout.features.protobuf_ingest:
        return []
    db = layout.database
    steps, final = _steps()
    table = [f"{db}.flows_ingest"] + [f"{db}.flows_ingest_{i}" for i in range(1, STEPS + 1)]
    out = [f"DROP TABLE IF EXISTS {db}.flows_ingest_mv"]
    for name in table[1:]:
        out += [f"DROP TABLE IF EXISTS {name}_mv", f"DROP TABLE IF EXISTS {name}"]
    queries = [f"SELECT *, {step} FROM {source}" for step, source in zip(steps, table)]
    # EMPTY AS SELECT: each Null table gets the columns (and types) of the step that fills it
    out += [f"CREATE TABLE {name} ENGINE = Null EMPTY AS {query}" for name, query in zip(table[1:], queries)]
    out.append(f"CREATE MATERIALIZED VIEW {db}.flows_ingest_mv TO {layout.table('flows')} AS "
               f"SELECT {final} FROM {table[-1]}")
    for target, query in reversed(list(zip(table[1:], queries))):  # flows_ingest_1_mv reads flows_ingest
        out.append(f"CREATE MATERIALIZED VIEW {target}_mv TO {target} AS {query}")
    return out
