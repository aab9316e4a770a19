"""Stored flows over a time window, read in slices so long histories show progress and never need one
huge query (storage contract: `storage.open_store(url).query_flows(...)`)."""

from __future__ import annotations

import sys
import time
from typing import Callable, Iterator, Protocol

from proto.flow import flow_pb2

NS = 1_000_000_000


class FlowQuery(Protocol):
    def query_flows(self, whitelist=(), blacklist=(), since=None, until=None, limit=100,
                    first=False) -> list[flow_pb2.Flow]: ...


def iter_flows(store: FlowQuery, since_ns: int, until_ns: int, whitelist=(), slices: int = 24,
               progress: Callable[[int, int, int], None] | None = None) -> Iterator[flow_pb2.Flow]:
    """Every stored flow in [since, until], oldest first, at most `slices` queries; progress(done, total,
    flows) with done/total the nanoseconds of the window read so far and in all."""
    slices = max(1, min(slices, (until_ns - since_ns) // NS + 1))
    step = (until_ns - since_ns) // slices + 1
    seen = 0
    for i in range(slices):
        lo = since_ns + i * step
        hi = min(until_ns, lo + step - 1)
        batch = store.query_flows(whitelist=whitelist, since=lo, until=hi, limit=None, first=True)
        seen += len(batch)
        yield from batch
        if progress:
            progress(hi - since_ns + 1, until_ns - since_ns + 1, seen)
        if hi >= until_ns:
            break


def stderr_progress(label: str) -> Callable[[int, int, int], None]:
    """A one-line progress display on stderr (only when it is a terminal, else a line per 25%).

    The window is read in time slices, so the percentage is of the time window, not of the flows: a
    window whose flows are all recent reads "50% of the window, 0 flows so far" — said in those words,
    so nobody takes it for "half the flows done, none found"."""
    started = time.monotonic()
    last = [-1]

    def line(done: int, total: int, flows: int) -> str:
        if done == total:
            return f"{label}: {flows} flows in the window ({time.monotonic() - started:.1f}s)"
        return f"{label}: {done * 100 // total}% of the time window read, {flows} flows so far"

    def show(done: int, total: int, flows: int) -> None:
        pct = done * 100 // total
        if sys.stderr.isatty():
            print(f"\r\033[K{line(done, total, flows)}", end="\n" if done == total else "", file=sys.stderr,
                  flush=True)
        elif pct // 25 != last[0] // 25 or done == total:
            print(line(done, total, flows), file=sys.stderr, flush=True)
        last[0] = pct
    return show
