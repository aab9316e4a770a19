"""Migrations 7 and 8: compact flows — `raw` without what the columns rebuild exactly."""

from __future__ import annotations

import dataclasses

from storage.schema.columns import COMPACT_COLUMNS, FLOW_COLUMNS
from storage.schema.ddl import flows_table
from storage.schema.envelope import CUT_7
from storage.schema.ingest_view import compact_statements
from storage.schema.layout import Layout


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
    return statements + compact_statements(layout, CUT_7)


def l4_l7(layout: Layout) -> list[str]:
    """Migration 8: the ingest view cuts l4 and l7 out of raw too."""
    return compact_statements(layout)
