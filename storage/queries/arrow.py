"""Stored flows as Arrow record batches, for analysis (flowscope.client): the flows table's own columns,
typed, in time order, a bounded number of rows at a time however long the window.

The window is cut into spans of whole minutes holding at most about `batch_rows` flows (one GROUP BY
minute query first), and each span is read with ORDER BY: neither ClickHouse nor Python ever sorts or
holds the whole window. The embedded engine answers each span in Arrow natively; a server through
clickhouse-driver (18.16 has no Arrow output format) gives rows that become Arrow arrays here.
"""

from __future__ import annotations

from typing import Iterable, Iterator, Sequence

import pyarrow as pa

from proto.flow import flow_pb2
from storage.chdb_backend import arrow_type
from storage.errors import StorageError
from storage.queries.paging import MINUTE_NS, minute_counts, spans
from storage.schema.columns import FLOW_COLUMNS

_BY_NAME = {c.name: c for c in FLOW_COLUMNS}


def schema(columns: Sequence[str]) -> pa.Schema:
    """The Arrow types of flows-table columns (raw excluded: it is not for analysis)."""
    unknown = [c for c in columns if c not in _BY_NAME or c == "raw"]
    if unknown:
        raise StorageError(f"flow columns {', '.join(unknown)}: not columns of the flows table")
    return pa.schema([(name, arrow_type(_BY_NAME[name])) for name in columns])


def _table(backend, sql: str, target: pa.Schema) -> pa.Table:
    if hasattr(backend, "arrow_table"):
        table = backend.arrow_table(sql)
        return pa.Table.from_arrays([table.column(i).cast(f.type) for i, f in enumerate(target)], schema=target)
    rows = backend.rows(sql)
    columns = list(zip(*rows)) if rows else [[] for _ in target]
    return pa.Table.from_arrays([pa.array(list(col), type=f.type) for col, f in zip(columns, target)],
                                schema=target)


def flow_batches(store, columns: Sequence[str], whitelist: Iterable[flow_pb2.FlowFilter] = (),
                 blacklist: Iterable[flow_pb2.FlowFilter] = (), since=None, until=None,
                 batch_rows: int = 65_536) -> Iterator[pa.RecordBatch]:
    if batch_rows <= 0:
        raise StorageError(f"batch_rows={batch_rows}: expected a positive number of rows")
    target = schema(columns)
    where = store._where(whitelist, blacklist, since, until)
    table = store.layout.table("flows")
    for start, end in spans(minute_counts(store, where), batch_rows):
        span = _table(store.backend, f"SELECT {', '.join(columns)} FROM {table} WHERE {where} AND time_ns >= "
                                     f"{start * MINUTE_NS} AND time_ns < {end * MINUTE_NS} "
                                     f"ORDER BY time_ns, uuid", target)
        yield from span.to_batches(max_chunksize=batch_rows)
