"""flowscope's own health metrics (prefix `flowscope_`), for the collector and the relay.

Each process builds one `HealthMetrics(registry)` and either pushes values through the setters or
binds a callable read at scrape time (`watch_*`), whichever is cheaper for the owner of the value:

    health = HealthMetrics(registry)
    observer.encoded_hooks.append(health.observe)       # flowscope_events_total, events_per_second
    health.count_lost("perf_event_ring_buffer", 12)     # flowscope_lost_events_total{source}
    health.watch_ring_buffer(lambda: (n, capacity))     # flowscope_ring_buffer_{flows,capacity,fill_ratio}
    health.watch_status(observer.status)                # the same (and nodes) from a ServerStatusResponse
    health.observe_storage_write(0.012, rows=5000)      # flowscope_storage_write_seconds, _rows_written_total
    health.watch_spool_bytes(writer_spool_bytes)        # flowscope_storage_spool_bytes
    health.set_nodes(connected=3, unavailable=1)        # flowscope_connected_nodes, flowscope_unavailable_nodes
    health.watch_l7_budget(lambda: {"http2": 2})        # flowscope_l7_capture_budget_exhausted_total{protocol}
    health.watch_tls_not_visible(lambda: {...})         # flowscope_tls_not_visible_processes_total{reason}
"""

from __future__ import annotations

import threading
import time
from typing import Callable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import CounterMetricFamily
from prometheus_client.registry import REGISTRY


STORAGE_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class RateMeter:
    """Events per second over the last `window` seconds, from per-second buckets (O(1) per mark)."""

    def __init__(self, window: int = 10, clock: Callable[[], float] = time.monotonic) -> None:
        self.window = window
        self._clock = clock
        self._lock = threading.Lock()
        self._buckets = [0] * (window + 1)
        self._stamps = [-1] * (window + 1)

    def mark(self, n: int = 1) -> None:
        second = int(self._clock())
        slot = second % len(self._buckets)
        with self._lock:
            if self._stamps[slot] != second:
                self._stamps[slot] = second
                self._buckets[slot] = 0
            self._buckets[slot] += n

    def rate(self) -> float:
        """Average over the last `window` complete seconds (the current partial second is left out)."""
        now = int(self._clock())
        with self._lock:
            total = sum(count for stamp, count in zip(self._stamps, self._buckets)
                        if now - self.window <= stamp < now)
        return total / self.window


class HealthMetrics:
    def __init__(self, registry: CollectorRegistry | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        registry = registry if registry is not None else REGISTRY
        self.registry = registry
        self.rate = RateMeter(clock=clock)
        self.events = Counter("flowscope_events_total", "Flows observed by this process", registry=registry)
        self.events_per_second = Gauge("flowscope_events_per_second",
                                       "Flows observed per second, averaged over the last 10 seconds",
                                       registry=registry)
        self.events_per_second.set_function(self.rate.rate)
        self.lost = Counter("flowscope_lost_events_total", "Events lost before they became flows",
                            ["source"], registry=registry)
        self.ring_flows = Gauge("flowscope_ring_buffer_flows", "Flows held in the observer ring buffer",
                                registry=registry)
        self.ring_capacity = Gauge("flowscope_ring_buffer_capacity", "Capacity of the observer ring buffer",
                                   registry=registry)
        self.ring_fill = Gauge("flowscope_ring_buffer_fill_ratio", "Ring buffer fill, 0..1", registry=registry)
        self.storage_write = Histogram("flowscope_storage_write_seconds",
                                       "Time to write one batch of flows to storage", buckets=STORAGE_BUCKETS,
                                       registry=registry)
        self.storage_rows = Counter("flowscope_storage_rows_written_total", "Flow rows written to storage",
                                    registry=registry)
        self.spool_bytes = Gauge("flowscope_storage_spool_bytes",
                                 "Bytes of flows spooled on disk while storage is unavailable",
                                 registry=registry)
        self.storage_available = Gauge("flowscope_storage_available",
                                       "1 while the flow store answers, 0 while it is unavailable (flows "
                                       "are then spooled)", registry=registry)
        self.connected_nodes = Gauge("flowscope_connected_nodes", "Collectors the relay is connected to",
                                     registry=registry)
        self.unavailable_nodes = Gauge("flowscope_unavailable_nodes", "Known collectors the relay cannot reach",
                                       registry=registry)

    def observe(self, flow: object = None) -> None:
        """Observer hook (a message or an EncodedFlow, which it does not read): count one flow."""
        self.events.inc()
        self.rate.mark()

    def count_events(self, n: int) -> None:
        """Count n flows at once (e.g. a batch received by the relay)."""
        self.events.inc(n)
        self.rate.mark(n)

    def count_lost(self, source: str, n: int) -> None:
        self.lost.labels(source).inc(n)

    def set_ring_buffer(self, flows: int, capacity: int) -> None:
        self.ring_flows.set(flows)
        self.ring_capacity.set(capacity)
        self.ring_fill.set(flows / capacity if capacity else 0.0)

    def watch_ring_buffer(self, read: Callable[[], tuple[int, int]]) -> None:
        """Read (flows, capacity) at every scrape."""
        self.ring_flows.set_function(lambda: read()[0])
        self.ring_capacity.set_function(lambda: read()[1])
        self.ring_fill.set_function(lambda: _ratio(*read()))

    def observe_storage_write(self, seconds: float, rows: int = 0) -> None:
        self.storage_write.observe(seconds)
        self.storage_rows.inc(rows)

    def set_spool_bytes(self, n: int) -> None:
        self.spool_bytes.set(n)

    def watch_spool_bytes(self, read: Callable[[], float]) -> None:
        self.spool_bytes.set_function(read)

    def watch_storage(self, available: Callable[[], bool]) -> None:
        self.storage_available.set_function(lambda: 1.0 if available() else 0.0)

    def set_nodes(self, connected: int, unavailable: int = 0) -> None:
        self.connected_nodes.set(connected)
        self.unavailable_nodes.set(unavailable)

    def watch_status(self, status: Callable[[], object]) -> None:
        """Read a ServerStatusResponse at every scrape — `Observer.status` or the relay's `Relay.status` —
        for the ring buffer (num_flows/max_flows) and, when present, the connected/unavailable nodes."""
        self.watch_ring_buffer(lambda: _ring(status()))
        self.watch_nodes(lambda: _nodes(status()))

    def watch_nodes(self, read: Callable[[], tuple[int, int]]) -> None:
        """Read (connected, unavailable) at every scrape."""
        self.connected_nodes.set_function(lambda: read()[0])
        self.unavailable_nodes.set_function(lambda: read()[1])

    def watch_l7_budget(self, read: Callable[[], dict[str, int]]) -> None:
        """Read {protocol: connections past the L7 capture budget} (the L7 dispatcher's own count) at
        every scrape."""
        self.registry.register(_WatchedCounter(
            "flowscope_l7_capture_budget_exhausted",
            "HTTP/2 and Kafka connections whose capture stopped at the per-connection budget "
            "(later requests on them are not seen)", "protocol", read))


    def watch_tls_not_visible(self, read: Callable[[], dict[str, int]]) -> None:
        """Read {reason: pod processes whose TLS the uprobes cannot see} (the TLS capture's count)."""
        self.registry.register(_WatchedCounter(
            "flowscope_tls_not_visible_processes",
            "Pod processes whose TLS plaintext is not visible (TLS linked statically: Go crypto/tls, "
            "BoringSSL, static OpenSSL)", "reason", read))


class _WatchedCounter:
    """A counter with one label whose values its owner keeps (read at scrape time)."""

    def __init__(self, name: str, documentation: str, label: str, read: Callable[[], dict[str, int]]) -> None:
        self.name, self.documentation, self.label, self.read = name, documentation, label, read

    def describe(self):
        return [CounterMetricFamily(self.name, self.documentation, labels=[self.label])]

    def collect(self):
        family = CounterMetricFamily(self.name, self.documentation, labels=[self.label])
        for value, count in sorted(self.read().items()):
            family.add_metric([value], count)
        yield family


def _ring(status) -> tuple[int, int]:
    return status.num_flows, status.max_flows


def _nodes(status) -> tuple[int, int]:
    return status.num_connected_nodes.value, status.num_unavailable_nodes.value


def _ratio(used: float, capacity: float) -> float:
    return used / capacity if capacity else 0.0
