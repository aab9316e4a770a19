"""Migrations 10 and 11: the embedded engine's ingest (CompactFlow envelopes -> the flows table, cutting
raw as migration 8 does; storage.schema.ingest_view) as a chain of materialized views through Null
tables, each view one step of the SQL.

Why a chain: as one view, ClickHouse's analyzer inlines the steps' subqueries, so every expression that
names another step's column carries that column's whole expression (the plan's column names alone were
39 MB): 0.36 s of CPU per insert before the first row, and ~4 us per row more than the same SQL without
the cut. A view over a table sees the step before as plain columns: 0.16 s per insert and the cut at
about the cost of keeping raw whole (bench/storage.py --targets, docs/benchmarks.md). Keeping raw whole
instead was measured too: +24 bytes per flow on disk for the benchmark's flows (23 -> 48), so the cut
stays.

Migration 11: the facts the envelope carried in fields 3-7 (is_reply set? which L4 and L7 record? the
endpoint kinds Python could decide) worked out by ClickHouse from the flow bytes in a first step, so
Python only frames each flow's bytes (storage.ingest.envelope.encode_raws) and needs no parsed flow:
is_reply's presence from FlowParts' is_reply bytes (NULL when absent), the L4 record from the tag that
starts l4, the L7 record from the tag after type and latency (where the canonical layout puts it;
searched for after them otherwise), the kinds from the reserved identities and the pod name.

flows_ingest -> [flows_ingest_0 (the facts, migration 11)] -> flows_ingest_1 (endpoint kinds, field
sizes and exactness) -> flows_ingest_2 (where each field sits) -> flows_ingest_3 (what is cut) ->
flows_ingest_4 (raw as kept) -> flows, whose view keeps the name flows_ingest_mv (migrations that make
the flows table again drop it by that name).
"""

from __future__ import annotations

from common.protocols import L7_RECORDS
from proto.flow import flow_pb2
from proto.wire import tag
from storage.schema.envelope import IDENTITY_KIND, L4_CODES
from storage.schema.ingest_view import (COMPACT_INGEST_COLUMNS, KINDS_STAGE, latest_parts, num_size,
                                        typed_columns)
from storage.schema.layout import Layout

STEPS = 4  # of migration 10's chain; migration 11 puts the facts before them
_FACTS = ("is_reply", "l4", "l7", "source_kind", "destination_kind")
# The ingest table of migration 11: no facts from Python; parts_l7 NULL when the flow has no l7, and
# is_reply's presence (FlowParts' is_reply) beside its value.
SLIM_INGEST_COLUMNS = [c.replace("parts_l7 String", "parts_l7 Nullable(String)")
                       for c in COMPACT_INGEST_COLUMNS if c.split()[0] not in _FACTS] + [
    "parts_is_reply Nullable(String)", "flow_is_reply_value UInt8"]


def _kind_code(p: str) -> str:
    ids = list(IDENTITY_KIND)
    return (f"transform(flow_{p}_identity, {ids}, {[IDENTITY_KIND[i] for i in ids]}, "
            f"toUInt8(flow_{p}_pod_name != ''))")


def facts_sql() -> str:
    """SELECT list over the slim ingest columns: every column, parts_l7 '' where it was NULL, and the
    envelope's facts named as its fields were (the rules of storage.ingest.envelope.encode)."""
    l4 = [name for name in L4_CODES if name]
    l4_tags, l4_codes = [tag(flow_pb2.Layer4, n)[0] for n in l4], [L4_CODES[n] for n in l4]
    l7_tags = ", ".join(f"unhex('{tag(flow_pb2.Layer7, r).hex()}')" for r in L7_RECORDS)
    record_at = f"(1 + {num_size('toUInt64(toInt64(flow_l7_type))')} + {num_size('flow_l7_latency_ns')})"
    return ("* EXCEPT (parts_is_reply, flow_is_reply_value) REPLACE (ifNull(parts_l7, '') AS parts_l7), "
            "toUInt8(if(isNull(parts_is_reply), 2, flow_is_reply_value)) AS is_reply, "
            f"toUInt8(transform(reinterpretAsUInt8(substring(parts_l4, 1, 1)), {l4_tags}, {l4_codes}, 0)) AS l4, "
            f"toUInt8(if(isNull(parts_l7) OR {record_at} > length(parts_l7), 0, "
            f"multiSearchFirstIndex(substring(parts_l7, {record_at}), [{l7_tags}]))) AS l7, "
            f"{_kind_code('source')} AS source_kind, {_kind_code('destination')} AS destination_kind")


def _steps() -> tuple[list[str], str]:
    """(each step's SELECT list over its input, the final SELECT list) of migration 10's chain."""
    select, flow_columns, (sizes, offsets, cuts, kept, uuid) = latest_parts()
    steps = [f"*, {KINDS_STAGE}, {sizes}", f"*, {offsets}", f"*, {cuts}", f"*, {kept}, {uuid}"]
    return steps, typed_columns(select, flow_columns)


def _chain(db: str, steps: list[str], final: str, flows: str) -> list[str]:
    """The chain from its end, so no step ever writes into a table nothing reads yet."""
    first = STEPS + 1 - len(steps)
    table = [f"{db}.flows_ingest"] + [f"{db}.flows_ingest_{i}" for i in range(first, STEPS + 1)]
    queries = [f"SELECT {step} FROM {source}" for step, source in zip(steps, table)]
    # EMPTY AS SELECT: each Null table gets the columns (and types) of the step that fills it
    out = [f"CREATE TABLE {name} ENGINE = Null EMPTY AS {query}" for name, query in zip(table[1:], queries)]
    out.append(f"CREATE MATERIALIZED VIEW {db}.flows_ingest_mv TO {flows} AS SELECT {final} FROM {table[-1]}")
    for target, query in reversed(list(zip(table[1:], queries))):  # flows_ingest_1_mv reads flows_ingest
        out.append(f"CREATE MATERIALIZED VIEW {target}_mv TO {target} AS {query}")
    return out


def _drop(db: str) -> list[str]:
    """The single view and any chain (of either migration, or of an interrupted run)."""
    out = [f"DROP TABLE IF EXISTS {db}.flows_ingest_mv"]
    for i in range(STEPS + 1):
        out += [f"DROP TABLE IF EXISTS {db}.flows_ingest_{i}_mv", f"DROP TABLE IF EXISTS {db}.flows_ingest_{i}"]
    return out


def statements(layout: Layout) -> list[str]:
    """Migration 10: the single view replaced by the chain."""
    if not layout.features.protobuf_ingest:
        return []
    steps, final = _steps()
    return _drop(layout.database) + _chain(layout.database, steps, final, layout.table("flows"))


def slim_statements(layout: Layout) -> list[str]:
    """Migration 11: the ingest table without the envelope's facts, and the chain with the step that
    works them out first."""
    if not layout.features.protobuf_ingest:
        return []
    db = layout.database
    steps, final = _steps()
    return (_drop(db) + [f"DROP TABLE IF EXISTS {db}.flows_ingest",
                         f"CREATE TABLE {db}.flows_ingest ({', '.join(SLIM_INGEST_COLUMNS)}) ENGINE = Null"]
            + _chain(db, [facts_sql()] + steps, final, layout.table("flows")))
