"""Time-ordered merge of the nodes' streams: a bounded heap with a drain timeout.

Nodes deliver runs (one batch each) of responses roughly in time order, and the nodes' runs interleave
arbitrarily (two nodes' flows alternate one by one). The heap holds runs keyed by their next
response's time; what is due is cut from each run as one slice (bisect) and the slices are merged by
one sort, so the per-flow work happens in C rather than in a per-flow heap operation. A run waits in
the heap until it has been there `drain_timeout` seconds (long enough for a slower node's earlier
flows to catch up) or until the heap holds more than `capacity` responses; the output is in time
order whenever the nodes are at most `drain_timeout` apart.
"""

from __future__ import annotations

import bisect
import heapq
import itertools
import time
from dataclasses import dataclass
from typing import Callable, Union

from proto.observer import observer_pb2
from relay.wire import FlowEntry

# What the relay carries: a flow as a FlowEntry (bytes), anything else (lost events, node status) as
# a GetFlowsResponse message.
Item = Union[FlowEntry, observer_pb2.GetFlowsResponse]


def response_time_ns(response: Item) -> int:
    """Event time of a response: the flow's time, else the envelope's (lost events, node status)."""
    if type(response) is FlowEntry:
        return response.time_ns
    stamp = response.flow.time if response.HasField("flow") else response.time
    return stamp.seconds * 1_000_000_000 + stamp.nanos


@dataclass
class Run:
    """Responses with their times; `flows` holds them when every response is a flow (else None)."""

    times: list[int]
    responses: list[Item]
    flows: list[FlowEntry] | None = None

    @classmethod
    def of(cls, responses: list[Item]) -> "Run":
        return cls([response_time_ns(r) for r in responses], list(responses))

    def sorted(self) -> "Run":
        if self.times == sorted(self.times):
            return self
        order = sorted(range(len(self.times)), key=self.times.__getitem__)
        flows = [self.flows[i] for i in order] if self.flows is not None else None
        return Run([self.times[i] for i in order], [self.responses[i] for i in order], flows)

    def slice(self, start: int, end: int) -> "Run":
        if start == 0 and end == len(self.times):
            return self
        flows = self.flows[start:end] if self.flows is not None else None
        return Run(self.times[start:end], self.responses[start:end], flows)

    def flow_list(self) -> list[FlowEntry]:
        if self.flows is not None:
            return self.flows
        return [r for r in self.responses if type(r) is FlowEntry]


class MergeBuffer:
    """Bounded time-ordered heap of runs. Not thread-safe: one merging thread owns it."""

    def __init__(self, drain_timeout: float = 0.2, capacity: int = 200_000,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.drain_timeout = drain_timeout
        self.capacity = capacity
        self._clock = clock
        # (time of the run's next response, tie-breaker, arrival, run, index of that response)
        self._heap: list[tuple[int, int, float, Run, int]] = []
        self._seq = itertools.count()
        self._size = 0

    def __len__(self) -> int:
        return self._size

    def push(self, run: Run) -> None:
        if not run.times:
            return
        run = run.sorted()
        heapq.heappush(self._heap, (run.times[0], next(self._seq), self._clock(), run, 0))
        self._size += len(run.times)

    def push_many(self, responses: list[Item]) -> None:
        self.push(Run.of(responses))

    def pop_runs(self, flush: bool = False) -> list[Run]:
        """Release, in time order, every response that waited long enough (all of them with flush): the
        due runs' responses earlier than the head of any run not yet due, then, while the heap holds
        more than `capacity`, the oldest of the rest. One merged Run (or none): the nodes' streams
        interleave flow by flow, so releasing run by run would cost a heap operation per flow; the
        slices are merged by one sort instead (Timsort merges sorted slices in linear time)."""
        if not self._heap:
            return []
        deadline = self._clock() - self.drain_timeout
        entries = self._heap
        waiting = [head for head, _, arrival, _, _ in entries if arrival > deadline]
        bound = None if flush or not waiting else min(waiting)
        parts, kept = self._release(entries, bound, bisect.bisect_left)
        excess = self._size - self.capacity
        if excess > 0 and kept:  # over capacity: the oldest `excess` of the rest go too
            times = sorted(t for _, _, _, run, start in kept for t in run.times[start:])
            more, kept = self._release(kept, times[excess - 1], bisect.bisect_right)
            parts += more
        heapq.heapify(kept)
        self._heap = kept
        if not parts:
            return []
        if len(parts) == 1:
            return parts
        flows = [f for part in parts for f in part.flows] if all(p.flows is not None for p in parts) else None
        return [Run([t for part in parts for t in part.times], [r for part in parts for r in part.responses],
                    flows).sorted()]

    def _release(self, entries: list, bound: int | None, cut: Callable) -> tuple[list[Run], list]:
        """Each entry's responses before `bound` (`cut`: bisect_left, up to it; bisect_right, through
        it; None: all) as a slice, and the entries still holding responses."""
        parts, kept = [], []
        for head, seq, arrival, run, start in entries:
            end = len(run.times) if bound is None else cut(run.times, bound, start)
            if end > start:
                parts.append(run.slice(start, end))
                self._size -= end - start
            if end < len(run.times):
                kept.append((run.times[end], seq, arrival, run, end))
        return parts, kept

    def pop_ready(self, flush: bool = False) -> list[Item]:
        return [r for run in self.pop_runs(flush) for r in run.responses]

    def next_deadline(self) -> float | None:
        """Seconds until the oldest queued response is due (None when empty)."""
        if not self._heap:
            return None
        return max(0.0, self._heap[0][2] + self.drain_timeout - self._clock())
