"""Reading a long window of stored flows a bounded page at a time, in time order: one GROUP BY minute
query cuts the window into spans of whole minutes holding about `page_rows` flows, each span is read with
ORDER BY time_ns, uuid, and a minute busier than a page is read by keyset (time_ns, uuid) within itself.
Neither ClickHouse nor Python ever sorts or holds the whole window (the relay's history, the SDK)."""

from __future__ import annotations

from typing import Iterable, Iterator

from proto.flow import flow_pb2
from storage.backend import quote
from storage.errors import StorageError

MINUTE_NS = 60_000_000_000


def spans(minute_counts: Iterable[tuple[int, int]], page_rows: int) -> list[tuple[int, int]]:
    """[start, end) minute ranges of consecutive minutes holding at most page_rows flows each (a
    single minute with more is a span of its own)."""
    out: list[tuple[int, int]] = []
    rows = 0
    for minute, count in minute_counts:
        if out and rows + count <= page_rows:
            out[-1] = (out[-1][0], minute + 1)
            rows += count
        else:
            out.append((minute, minute + 1))
            rows = count
    return out


def minute_counts(store, where: str) -> list[tuple[int, int]]:
    """(minute, flows) of every minute of the window that has flows, oldest first."""
    return store.backend.rows(f"SELECT intDiv(time_ns, {MINUTE_NS}) AS m, count() FROM {store.layout.table('flows')} "
                              f"WHERE {where} GROUP BY m ORDER BY m")


def _newest(counts: list[tuple[int, int]], limit: int) -> list[tuple[int, int]]:
    """The newest minutes that together hold at least `limit` flows."""
    total = 0
    for i in range(len(counts) - 1, -1, -1):
        total += counts[i][1]
        if total >= limit:
            return counts[i:]
    return counts


def _span_pages(store, where: str, start: int, end: int, page_rows: int) -> Iterator[list[flow_pb2.Flow]]:
    bounds = f"{where} AND time_ns >= {start * MINUTE_NS} AND time_ns < {end * MINUTE_NS}"
    after = ""
    while True:
        page = store._rebuilt(f"WHERE {bounds}{after} ORDER BY time_ns, uuid LIMIT {page_rows}")
        if page:
            yield page
        if len(page) < page_rows:
            return
        last_ns = page[-1].time.seconds * 1_000_000_000 + page[-1].time.nanos
        after = f" AND (time_ns > {last_ns} OR (time_ns = {last_ns} AND uuid > {quote(page[-1].uuid)}))"


def flow_pages(store, whitelist: Iterable[flow_pb2.FlowFilter] = (), blacklist: Iterable[flow_pb2.FlowFilter] = (),
               since=None, until=None, limit: int | None = None, first: bool = True,
               page_rows: int = 2_000) -> Iterator[list[flow_pb2.Flow]]:
    """Stored flows in [since, until] (inclusive), oldest first, rebuilt exactly, in pages of at most
    page_rows: all of them; the first `limit`; or with first=False the newest minutes holding at least
    `limit` (the caller keeps the last `limit`, as it merges other sources in)."""
    if page_rows <= 0:
        raise StorageError(f"page_rows={page_rows}: expected a positive number of flows")
    where = store._where(whitelist, blacklist, since, until)
    counts = minute_counts(store, where)
    if limit and not first:
        counts = _newest(counts, limit)
    sent = 0
    for start, end in spans(counts, page_rows):
        for page in _span_pages(store, where, start, end, page_rows):
            if limit and first:
                page = page[:limit - sent]
            yield page
            sent += len(page)
            if limit and first and sent >= limit:
                return
