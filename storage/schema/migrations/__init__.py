"""The versioned, idempotent migrations of a flowscope database, in order (FlowStore.migrate applies them).

Each is made of storage.schema's statements; those that need more than a list of statements have their
own module here (compact: 7 and 8, flows_v9: 9).
"""

from __future__ import annotations

import dataclasses
from typing import Callable

from storage.schema import ddl, ingest_chain, ingest_view
from storage.schema.layout import Layout
from storage.schema.migrations import compact, flows_v9


@dataclasses.dataclass(frozen=True)
class Migration:
    version: int
    description: str
    statements: Callable[[Layout], list[str]]
    # A migration that must look before it acts (copying a table, resuming after a crash) runs
    # itself: (backend, layout) -> None, instead of fixed statements.
    run: Callable[[object, Layout], None] | None = None


def _none(layout: Layout) -> list[str]:
    return []


# Append only: a released migration never changes; a new need is a new version.
MIGRATIONS: tuple[Migration, ...] = (
    Migration(1, "flows table", ddl.flows_table),
    Migration(2, "service-map edges per minute", ddl.edges),
    Migration(3, "HTTP RED per workload per minute", ddl.http),
    Migration(4, "DNS per workload per minute", ddl.dns),
    Migration(5, "protobuf ingest table (embedded engine)", ingest_view.statements),
    Migration(6, "service-map edges per hour (long windows)",
              lambda layout: ddl.edges(layout, "edges_1h", "toStartOfHour")),
    Migration(7, "compact flows: raw without what columns rebuild, ZSTD codecs", compact.compact_flows),
    Migration(8, "compact flows: l4 and l7 out of raw too", compact.l4_l7),
    Migration(9, "flows table again: uuid as UUID, ts an ALIAS, destination in the sort key",
              _none, flows_v9.migrate),
    Migration(10, "protobuf ingest as a chain of views (planned in less than half the time)",
              ingest_chain.statements),
    Migration(11, "protobuf ingest: the envelope's facts worked out from the flow bytes by ClickHouse",
              ingest_chain.slim_statements),
)
LATEST = MIGRATIONS[-1].version
