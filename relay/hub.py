"""The relay's memory: a ring of the merged flows (relay.wire.FlowEntry: bytes) and the live subscribers of GetFlows follow streams.

A snapshot of the ring and a new subscription are taken under one lock, so a client that reads the
ring and then follows sees every flow exactly once: nothing published between the two is lost or
repeated. A subscriber that falls behind loses its oldest queued responses and is told so with a
LostEvent, instead of slowing the relay down.
"""

from __future__ import annotations

import collections
import threading
import time
from typing import Callable

from google.protobuf import timestamp_pb2

from proto.flow import flow_pb2
from proto.observer import observer_pb2
from relay.wire import FlowEntry

RATE_WINDOW_S = 60.0


def now_timestamp(clock: Callable[[], int] = time.time_ns) -> timestamp_pb2.Timestamp:
    ns = clock()
    return timestamp_pb2.Timestamp(seconds=ns // 1_000_000_000, nanos=ns % 1_000_000_000)


class Subscriber:
    """A bounded queue of responses (relay.merge.Item, or peer changes) for one follow stream."""

    def __init__(self, capacity: int) -> None:
        self._queue: collections.deque = collections.deque()
        self._capacity = capacity
        self._cond = threading.Condition(threading.Lock())
        self._lost = 0
        self.closed = False
        # Called (from the publishing thread) when the queue stops being empty or the subscriber closes:
        # how an asyncio consumer learns there is something to take without a thread blocked in take().
        self.wakeup: Callable[[], None] | None = None

    def offer(self, responses: list) -> None:
        with self._cond:
            was_empty = not self._queue
            self._queue.extend(responses)
            overflow = len(self._queue) - self._capacity
            if overflow > 0:
                for _ in range(overflow):
                    self._queue.popleft()
                self._lost += overflow
            self._cond.notify()
        if was_empty and self.wakeup is not None:
            self.wakeup()

    def close(self) -> None:
        with self._cond:
            self.closed = True
            self._cond.notify()
        if self.wakeup is not None:
            self.wakeup()

    def take(self, timeout: float) -> list:
        """Everything queued (waiting up to `timeout` for something), a LostEvent first if we dropped."""
        with self._cond:
            if not self._queue and not self.closed:
                self._cond.wait(timeout)
            out = list(self._queue)
            self._queue.clear()
            lost, self._lost = self._lost, 0
        if lost:
            event = flow_pb2.LostEvent(source=flow_pb2.OBSERVER_EVENTS_QUEUE, num_events_lost=lost)
            out.insert(0, observer_pb2.GetFlowsResponse(lost_events=event, time=now_timestamp()))
        return out


class Hub:
    """Ring of recent merged flows plus broadcast to subscribers; thread-safe."""

    def __init__(self, capacity: int = 65536, subscriber_capacity: int = 100_000) -> None:
        self.capacity = capacity
        self._ring: collections.deque[FlowEntry] = collections.deque(maxlen=capacity)
        self._subscriber_capacity = subscriber_capacity
        self._subscribers: set[Subscriber] = set()
        self._lock = threading.Lock()
        self.seen_flows = 0
        self._rate: collections.deque[tuple[float, int]] = collections.deque()

    def publish(self, responses: list, flows: list[FlowEntry]) -> None:
        """Add merged responses (relay.merge.Item; `flows` are the flows among them): the flows go into
        the ring; everything goes to the subscribers."""
        in_ring = responses if len(flows) == len(responses) else flows
        now = time.monotonic()
        with self._lock:
            self._ring.extend(in_ring)
            self.seen_flows += len(flows)
            self._rate.append((now, len(flows)))
            while self._rate and self._rate[0][0] < now - RATE_WINDOW_S:
                self._rate.popleft()
            for subscriber in self._subscribers:
                subscriber.offer(responses)

    def broadcast(self, response: observer_pb2.GetFlowsResponse) -> None:
        """Send a response (node status) to live subscribers only."""
        with self._lock:
            for subscriber in self._subscribers:
                subscriber.offer([response])

    def snapshot(self, follow: bool) -> tuple[list[FlowEntry], Subscriber | None]:
        """The ring's flows, and (with follow) a subscription starting exactly after them."""
        with self._lock:
            flows = list(self._ring)
            if not follow:
                return flows, None
            subscriber = Subscriber(self._subscriber_capacity)
            self._subscribers.add(subscriber)
            return flows, subscriber

    @property
    def followers(self) -> int:
        """Follow streams subscribed now (tests wait on it instead of sleeping)."""
        with self._lock:
            return len(self._subscribers)

    def unsubscribe(self, subscriber: Subscriber) -> None:
        with self._lock:
            self._subscribers.discard(subscriber)
        subscriber.close()

    def close(self) -> None:
        with self._lock:
            subscribers, self._subscribers = self._subscribers, set()
        for subscriber in subscribers:
            subscriber.close()

    def __len__(self) -> int:
        return len(self._ring)

    @property
    def subscribers(self) -> int:
        """Open follow streams."""
        with self._lock:
            return len(self._subscribers)

    def flows_rate(self) -> float:
        """Flows per second over the last minute (or since the first flow, if sooner)."""
        with self._lock:
            if not self._rate:
                return 0.0
            span = max(1.0, min(RATE_WINDOW_S, time.monotonic() - self._rate[0][0]))
            return sum(n for _, n in self._rate) / span
