"""Real lab traffic through the real collector (eBPF datapath, L7 parser, Observer hook) into
collector.metrics, scraped by a real Prometheus: the headline panels' queries see it."""

from __future__ import annotations

import pytest
from prometheus_client import CollectorRegistry

from collector.metrics import DEFAULT_METRICS, FlowMetrics, HealthMetrics, serve
from tests.collector.datapath.helpers import TOPOLOGY, wait_listening
from tests.fixtures.prometheus import positive

pytestmark = pytest.mark.root

TRAFFIC = ("while true; do curl -s -o /dev/null http://{ip}:8080/; curl -s -o /dev/null http://{ip}:8080/missing; "
           "sleep 0.2; done")


@pytest.fixture
def lab_metrics(lab_factory, collector_factory, prometheus_factory):
    lab = lab_factory(TOPOLOGY)
    run = collector_factory(lab)
    registry = CollectorRegistry()
    metrics = FlowMetrics(DEFAULT_METRICS, registry)
    health = HealthMetrics(registry)
    run.collector.observer.encoded_hooks.extend([metrics.observe, health.observe])  # as the agent does
    server, port = serve(registry, "127.0.0.1:0")
    wait_listening(lab, "server", 8080)
    traffic = lab.popen("client", ["sh", "-c", TRAFFIC.format(ip=lab.pod("server").ipv4)])
    try:
        prom = prometheus_factory({"flowscope-collector": [f"127.0.0.1:{port}"]})
        prom.wait_up()
        yield prom
    finally:
        traffic.kill()
        traffic.wait()
        server.shutdown()
        server.server_close()


def test_lab_traffic_reaches_prometheus_through_the_collector(lab_metrics):
    prom = lab_metrics
    types = prom.wait_for('sum by (type) (rate(hubble_flows_processed_total{verdict="FORWARDED"}[5s])) > 0',
                          until=lambda r: {s["metric"]["type"] for s in r} >= {"Trace", "L7"}, timeout=40)
    assert types
    statuses = prom.wait_for('sum by (status, destination_workload) (rate(hubble_http_requests_total[5s])) > 0',
                             until=lambda r: {s["metric"]["status"] for s in r} >= {"200", "404"}, timeout=30)
    assert {s["metric"]["destination_workload"] for s in statuses} == {"server"}
    prom.wait_for('histogram_quantile(0.95, sum by (le, destination_workload) '
                  '(rate(hubble_http_request_duration_seconds_bucket[5s])))', until=positive)
    prom.wait_for('rate(hubble_tcp_flags_total{flag="SYN"}[5s])', until=positive)
    prom.wait_for('rate(hubble_port_distribution_total{protocol="TCP", port="8080"}[5s])', until=positive)
    prom.wait_for("flowscope_events_per_second", until=positive)
