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
    """Every stored flow in [since, until], oldest first, `slices` queries; progress(done, total, flows)."""
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
            progress(i + 1, slices, seen)
        if hi >= until_ns:
            break


def stderr_progress(label: str) -> Callable[[int, int, int], None]:
    """A one-line progress display on stderr (only when it is a terminal, else a line per 25%)."""
    started = time.monotonic()
    last = [-1]

    def show(done: int, total: int, flows: int) -> None:
        pct = done * 100 // total
        if sys.stderr.isatty():
            print(f"\r{label}: {pct:3d}% ({flows} flows, {time.monotonic() - started:.1f}s)", end="",
                  file=sys.stderr, flush=True)
            if done == total:
                print(file=sys.stderr)
        elif pct // 25 != last[0] // 25 or done == total:
            print(f"{label}: {pct}% ({flows} flows)", file=sys.stderr, flush=True)
        last[0] = pct
    return show
