"""Time-ordered merge of the nodes' streams: a bounded heap with a drain timeout.

Nodes deliver runs (one batch each) of responses roughly in time order, and the nodes' runs interleave
arbitrarily. The heap holds runs keyed by their next response's time; the oldest run gives up every
response not later than the next run's head, as one slice, so the per-flow work happens in C (sort,
bisect, slicing) rather than in a per-flow heap operation. A run waits in the heap until it has been
there `drain_timeout` seconds (long enough for a slower node's earlier flows to catch up) or until the
heap holds more than `capacity` responses; the output is in time order whenever the nodes are at most
`drain_timeout` apart.
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
        """Release, oldest first, every response that waited long enough (all of them with flush)."""
        heap, out = self._heap, []
        deadline = self._clock() - self.drain_timeout
        while heap and (flush or self._size > self.capacity or heap[0][2] <= deadline):
            _, seq, arrival, run, start = heapq.heappop(heap)
            end = len(run.times)
            if heap:
                end = max(start + 1, bisect.bisect_right(run.times, heap[0][0], start))
            out.append(run.slice(start, end))
            self._size -= end - start
            if end < len(run.times):
                heapq.heappush(heap, (run.times[end], seq, arrival, run, end))
        return out

    def pop_ready(self, flush: bool = False) -> list[Item]:
        return [r for run in self.pop_runs(flush) for r in run.responses]

    def next_deadline(self) -> float | None:
        """Seconds until the oldest queued response is due (None when empty)."""
        if not self._heap:
            return None
        return max(0.0, self._heap[0][2] + self.drain_timeout - self._clock())
