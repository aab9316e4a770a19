"""FlowMetrics: Hubble's flow metrics, configured like Hubble's `--metrics`, fed by the Observer hook."""

from __future__ import annotations

import logging
import threading
import time
from typing import Callable, Iterable

from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily
from prometheus_client.registry import REGISTRY, Collector

from common.endpoints import Endpoint
from collector.metrics.config import MetricsConfigError, parse_specs
from collector.metrics.handlers import HANDLERS, Handler
from collector.metrics.replay import Recorder, Replay
from collector.metrics.series import DEFAULT_BUCKETS, SeriesCollector, SeriesVec
from collector.observer.wire import EncodedFlow
from proto.flow import flow_pb2

log = logging.getLogger(__name__)

# What flowscope enables when nothing is configured, and what the Grafana dashboards in deploy/grafana
# are written against (their per-workload panels need the httpV2 labelsContext below).
DEFAULT_METRICS = (
    "flow",
    "drop:sourceContext=namespace;destinationContext=namespace",
    "tcp",
    "icmp",
    "port-distribution",
    "flows-to-world",
    "policy:sourceContext=namespace|reserved-identity;destinationContext=namespace|reserved-identity",
    "dns:query;ignoreAAAA;labelsContext=source_namespace",
    "httpV2:exemplars=false;grpcStatus;labelsContext=source_namespace,source_workload,"
    "destination_namespace,destination_workload",
    "kafka:labelsContext=source_namespace,destination_namespace",
)
LOST_SOURCES = {number: name.lower() for name, number in flow_pb2.LostEventSource.items()}
DEFAULT_CARDINALITY_LIMIT = 10_000
DEFAULT_TTL_SECONDS = 900.0


class _LostEvents(Collector):
    """hubble_lost_events_total{source}: always present, as in Hubble."""

    def __init__(self) -> None:
        self.counts: dict[str, float] = {}
        self._lock = threading.Lock()

    def add(self, source: str, n: int) -> None:
        with self._lock:
            self.counts[source] = self.counts.get(source, 0) + n

    def describe(self):
        yield CounterMetricFamily("hubble_lost_events_total", "Number of lost events", labels=["source"])

    def collect(self):
        family = CounterMetricFamily("hubble_lost_events_total", "Number of lost events", labels=["source"])
        for source, count in list(self.counts.items()):
            family.add_metric([source], count)
        yield family


class FlowMetrics:
    """Hubble-compatible flow metrics.

    `config`: Hubble metric specs (a list, or one whitespace-separated string), e.g.
    ["flow", "drop:sourceContext=namespace", "httpV2:labelsContext=source_namespace,destination_workload"].
    Each metric family keeps at most `cardinality_limit` series (per-metric option
    `cardinalityLimit=N` overrides it); series untouched for `ttl` seconds (None: never) are dropped
    at scrape time. Raises MetricsConfigError (a UserError) for an unknown metric or option.
    """

    def __init__(self, config: str | Iterable[str] = DEFAULT_METRICS, registry: CollectorRegistry | None = None,
                 cardinality_limit: int = DEFAULT_CARDINALITY_LIMIT, ttl: float | None = DEFAULT_TTL_SECONDS,
                 clock: Callable[[], float] = time.monotonic) -> None:
        specs = parse_specs(config if isinstance(config, str) else list(config))
        names = {s.name for s in specs}
        if {"http", "httpV2"} <= names:
            raise MetricsConfigError("metrics 'http' and 'httpV2' both define hubble_http_requests_total; "
                                     "enable one of them")
        self.registry = registry if registry is not None else REGISTRY
        self.handlers: list[Handler] = []
        for spec in specs:
            handler_type = HANDLERS.get(spec.name)
            if handler_type is None:
                raise MetricsConfigError(f"metric spec {spec.text!r}: unknown metric {spec.name!r}; "
                                         f"expected one of {', '.join(HANDLERS)}")
            limit = _limit(spec.options.get("cardinalitylimit"), cardinality_limit, spec.text)

            def make_vec(name: str, help_text: str, labels: tuple[str, ...], histogram: bool,
                         limit: int = limit) -> SeriesVec:
                return SeriesVec(name, help_text, labels, limit, clock,
                                 buckets=DEFAULT_BUCKETS if histogram else None)

            self.handlers.append(handler_type(spec, make_vec))
        self.vecs = [vec for handler in self.handlers for vec in handler.vecs]
        # The same handlers once more, on vectors that only record: how EncodedFlows are counted.
        ops: list = []
        recorders: list[Recorder] = []

        def make_recorder(name: str, help_text: str, labels: tuple[str, ...], histogram: bool) -> Recorder:
            recorders.append(Recorder(ops))
            return recorders[-1]

        recording = [HANDLERS[spec.name](spec, make_recorder) for spec in specs]
        self._replay = Replay(lambda flow: self._run(recording, flow), ops, recorders, self.vecs)
        self.collector = SeriesCollector(self.vecs, ttl, clock)
        self.lost = _LostEvents()
        self.registry.register(self.collector)
        self.registry.register(self.lost)
        self._endpoints: dict[tuple[str, str], tuple[str, ...]] = {}
        self.errors = 0

    def observe(self, flow: flow_pb2.Flow | EncodedFlow) -> None:
        """Observer hook (Observer.encoded_hooks): count one flow in every enabled metric; an
        EncodedFlow with facts from them, unparsed (see replay.py). Never raises: a flow that a handler
        cannot read is counted in `errors` and logged once."""
        if type(flow) is EncodedFlow:
            if flow.facts is not None:
                self._replay.count(flow)
                return
            flow = flow.parse()
        self._run(self.handlers, flow)

    def _run(self, handlers: list[Handler], flow: flow_pb2.Flow) -> int:
        """Every handler on `flow`; returns how many raised."""
        failed = 0
        for handler in handlers:
            try:
                handler.process(flow)
            except Exception:  # a metrics bug must not stop the observer loop
                failed += 1
                self.errors += 1
                if self.errors == 1:
                    log.exception("metrics: cannot process flow %s", getattr(flow, "uuid", flow))
        return failed

    __call__ = observe

    def observe_lost(self, lost: flow_pb2.LostEvent) -> None:
        """Count a LostEvent in hubble_lost_events_total{source} (source lower-cased as Hubble does)."""
        source = LOST_SOURCES.get(lost.source, str(lost.source))
        self.lost.add(source, lost.num_events_lost)

    def forget_endpoint(self, namespace: str, pod_name: str, ips: Iterable[str] = ()) -> int:
        """Endpoint-deletion callback: remove the series whose context labels name this pod (pod,
        pod-name... contexts, labelsContext source_pod/destination_pod, ip contexts). Returns how many."""
        removed = 0
        for handler in self.handlers:
            for match in handler.context.endpoint_matches(namespace, pod_name, tuple(ips)):
                for vec in handler.vecs:
                    removed += vec.delete_matching(match)
        return removed

    def sync_endpoints(self, endpoints: Iterable[Endpoint]) -> int:
        """Give the current endpoints (e.g. `EndpointCache.all_endpoints()` after each refresh): the series
        of pods that were there at the previous call and are gone now are forgotten. Returns how many."""
        current = {(e.namespace, e.pod_name): e.ips for e in endpoints}
        gone = [(key, ips) for key, ips in self._endpoints.items() if key not in current]
        self._endpoints = current
        return sum(self.forget_endpoint(namespace, pod, ips) for (namespace, pod), ips in gone)

    def expire(self) -> int:
        """Drop series untouched for `ttl` seconds now (scrapes also do it). Returns how many."""
        return self.collector.expire()

    def close(self) -> None:
        """Unregister from the registry (e.g. before building a new FlowMetrics on reconfiguration)."""
        self.registry.unregister(self.collector)
        self.registry.unregister(self.lost)


def _limit(value: str | None, default: int, text: str) -> int:
    if value is None:
        return default
    if not (value.isascii() and value.isdigit()) or int(value) < 1:
        raise MetricsConfigError(f"metric spec {text!r}: cardinalityLimit={value!r}, expected a positive integer")
    return int(value)
