"""A real Prometheus scrapes a collector-like and a relay-like /metrics endpoint fed with flows through
collector.metrics; the PromQL of every Prometheus panel of every dashboard must return data, and a
metric over its cardinality limit must stop growing while its refusal counter rises."""

from __future__ import annotations

import itertools
import threading

import pytest
from prometheus_client import CollectorRegistry

from collector.metrics import DEFAULT_METRICS, FlowMetrics, HealthMetrics, serve
from proto.flow import flow_pb2
from lab.testbed import sample_flows as sf
from tests.fixtures.prometheus import positive
from tests.grafana.dashboards import PROM_QUERIES, expand_promql

LIMIT = 5


class Feeder:
    """Publishes the shop's traffic and health values every 200 ms until stopped."""

    def __init__(self) -> None:
        self.collector = CollectorRegistry()
        self.relay = CollectorRegistry()
        self.limited = CollectorRegistry()
        self.metrics = FlowMetrics(DEFAULT_METRICS, self.collector)
        self.collector_health = HealthMetrics(self.collector)
        self.relay_health = HealthMetrics(self.relay)
        self.limited_metrics = FlowMetrics(
            ["flow:sourceContext=pod", f"drop:sourceContext=pod;cardinalityLimit={LIMIT}"], self.limited)
        self.stop = threading.Event()
        self.pods = itertools.count()
        self.budget_exhausted = {"http2": 0}
        self.collector_health.watch_l7_budget(lambda: dict(self.budget_exhausted))
        self.thread = threading.Thread(target=self.run, daemon=True)

    def round(self) -> None:
        for flow in sf.shop_round():
            self.metrics.observe(flow)
            self.collector_health.observe(flow)
        self.metrics.observe_lost(flow_pb2.LostEvent(source=flow_pb2.PERF_EVENT_RING_BUFFER, num_events_lost=2))
        self.collector_health.count_lost("perf_event_ring_buffer", 2)
        self.collector_health.set_ring_buffer(3000, 4096)
        self.budget_exhausted["http2"] += 1
        self.relay_health.count_events(40)
        self.relay_health.observe_storage_write(0.015, rows=40)
        self.relay_health.set_spool_bytes(8192)
        self.relay_health.set_nodes(connected=2, unavailable=1)
        # a new pod every round: the limited drop metric must stop at LIMIT series
        pod = sf.endpoint("churn", f"job-{next(self.pods)}", "job", 3000)
        self.limited_metrics.observe(sf.policy_drop(pod, sf.DB, 5432))

    def run(self) -> None:
        while not self.stop.wait(0.2):
            self.round()


@pytest.fixture(scope="module")
def prometheus(prometheus_factory):
    feeder = Feeder()
    servers = {name: serve(registry, "127.0.0.1:0") for name, registry in
               (("flowscope-collector", feeder.collector), ("flowscope-relay", feeder.relay),
                ("limited", feeder.limited))}
    for _ in range(LIMIT + 2):
        feeder.round()
    feeder.thread.start()
    prom = prometheus_factory({name: [f"127.0.0.1:{port}"] for name, (_, port) in servers.items()})
    try:
        prom.wait_up()
        yield prom
    finally:
        feeder.stop.set()
        feeder.thread.join()
        for server, _ in servers.values():
            server.shutdown()
            server.server_close()


@pytest.mark.parametrize("query", PROM_QUERIES, ids=[f"{q.dashboard}:{q.panel}:{q.ref_id}" for q in PROM_QUERIES])
def test_every_prometheus_panel_returns_data(prometheus, query):
    result = prometheus.wait_for(expand_promql(query.expr), until=positive)
    assert all("value" in sample for sample in result)


def test_headline_queries_have_the_expected_labels(prometheus):
    verdicts = {r["metric"]["verdict"] for r in prometheus.wait_for(
        "sum by (verdict) (rate(hubble_flows_processed_total[5s])) > 0")}
    assert verdicts == {"FORWARDED", "DROPPED"}
    p95 = prometheus.wait_for('histogram_quantile(0.95, sum by (le, destination_workload) '
                              '(rate(hubble_http_request_duration_seconds_bucket[5s])))')
    assert {r["metric"]["destination_workload"] for r in p95} == {"backend"}
    # two of three responses are fast (12 and 30 ms), one slow (250 ms): p95 is in the 0.1-0.25 s bucket
    assert 0.1 < float(p95[0]["value"][1]) <= 0.25


def test_cardinality_limit_stops_growth_and_counts_refusals(prometheus):
    series = prometheus.wait_for('count(hubble_drop_total{job="limited"})')
    assert int(series[0]["value"][1]) == LIMIT
    refused = prometheus.wait_for(
        'flowscope_metrics_cardinality_refused_total{job="limited", metric="hubble_drop_total"}')
    first = float(refused[0]["value"][1])
    assert first >= 2
    rising = prometheus.wait_for(
        'increase(flowscope_metrics_cardinality_refused_total{job="limited", metric="hubble_drop_total"}[5s]) > 0')
    assert rising
    assert int(prometheus.query('count(hubble_drop_total{job="limited"})')[0]["value"][1]) == LIMIT
    # the unlimited metric of the same endpoint kept counting every new pod
    pods = int(prometheus.wait_for('count(hubble_flows_processed_total{job="limited"})')[0]["value"][1])
    assert pods > LIMIT


def test_namespace_variable_narrows_the_http_panels(prometheus):
    query = next(q for q in PROM_QUERIES if q.panel == "Requests/s by workload")
    expr = query.expr.replace("$__rate_interval", "5s")
    shop = prometheus.wait_for(expr.replace("$namespace", "shop"), until=positive)
    assert {s["metric"]["destination_namespace"] for s in shop} == {"shop"}
    assert prometheus.query(expr.replace("$namespace", "elsewhere")) == []
