"""Time-ordered merge of the nodes' streams: a bounded heap with a drain timeout.

Each node delivers its flows roughly in time order, but the nodes' streams interleave arbitrarily. A
response waits in the heap until it has been there `drain_timeout` seconds (long enough for a slower
node's earlier flows to catch up) or until the heap is full; the heap always releases its oldest flow
first, so the output is in time order whenever the nodes are at most `drain_timeout` apart.
"""

from __future__ import annotations

import heapq
import itertools
import time
from typing import Callable

from proto.observer import observer_pb2


def response_time_ns(response: observer_pb2.GetFlowsResponse) -> int:
    """Event time of a response: the flow's time, else the envelope's (lost events, node status)."""
    stamp = response.flow.time if response.HasField("flow") else response.time
    return stamp.seconds * 1_000_000_000 + stamp.nanos


class MergeBuffer:
    """Bounded time-ordered heap. Not thread-safe: one merging thread owns it."""

    def __init__(self, drain_timeout: float = 0.2, capacity: int = 200_000,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.drain_timeout = drain_timeout
        self.capacity = capacity
        self._clock = clock
        self._heap: list[tuple[int, int, float, observer_pb2.GetFlowsResponse]] = []
        # The sequence number breaks ties so the heap never compares two protobuf messages.
        self._seq = itertools.count()

    def __len__(self) -> int:
        return len(self._heap)

    def push_many(self, responses: list[observer_pb2.GetFlowsResponse]) -> None:
        now = self._clock()
        heap, seq = self._heap, self._seq
        for response in responses:
            heapq.heappush(heap, (response_time_ns(response), next(seq), now, response))

    def pop_ready(self, flush: bool = False) -> list[observer_pb2.GetFlowsResponse]:
        """Release, oldest first, every response that waited long enough (all of them with flush)."""
        heap, out = self._heap, []
        deadline = self._clock() - self.drain_timeout
        while heap and (flush or len(heap) > self.capacity or heap[0][2] <= deadline):
            out.append(heapq.heappop(heap)[3])
        return out

    def next_deadline(self) -> float | None:
        """Seconds until the oldest queued response is due (None when empty)."""
        if not self._heap:
            return None
        return max(0.0, self._heap[0][2] + self.drain_timeout - self._clock())
