"""flowscope's health metrics and the /metrics HTTP endpoint."""

import urllib.error
import urllib.request

import pytest
from prometheus_client import CollectorRegistry

from collector.metrics import FlowMetrics, HealthMetrics, RateMeter, parse_address, serve
from common.errors import UserError
from lab.testbed import sample_flows as sf


def test_rate_meter_averages_complete_seconds():
    now = [100.0]
    meter = RateMeter(window=10, clock=lambda: now[0])
    for second in range(10):
        now[0] = 100.0 + second
        meter.mark(50)
    now[0] = 110.2
    meter.mark(999)  # the current, incomplete second is left out
    assert meter.rate() == 50.0
    now[0] = 125.0
    assert meter.rate() == 0.0


def test_health_setters_and_watchers():
    registry = CollectorRegistry()
    health = HealthMetrics(registry)
    for flow in sf.shop_round():
        health.observe(flow)
    health.count_events(5)
    health.count_lost("perf_event_ring_buffer", 4)
    health.watch_ring_buffer(lambda: (300, 1200))
    health.observe_storage_write(0.02, rows=500)
    health.watch_spool_bytes(lambda: 4096)
    health.set_nodes(connected=2, unavailable=1)
    budget_exhausted = {"http2": 2}
    health.watch_l7_budget(lambda: budget_exhausted)
    get = registry.get_sample_value
    assert get("flowscope_l7_capture_budget_exhausted_total", {"protocol": "http2"}) == 2
    budget_exhausted["kafka"] = 1  # read at scrape time
    assert get("flowscope_l7_capture_budget_exhausted_total", {"protocol": "kafka"}) == 1
    not_visible = {}
    health.watch_tls_not_visible(lambda: not_visible)
    not_visible["TLS not visible: statically linked"] = 3
    assert get("flowscope_tls_not_visible_processes_total", {"reason": "TLS not visible: statically linked"}) == 3
    assert get("flowscope_events_total") == len(sf.shop_round()) + 5
    assert get("flowscope_lost_events_total", {"source": "perf_event_ring_buffer"}) == 4
    assert get("flowscope_ring_buffer_fill_ratio") == 0.25
    assert get("flowscope_ring_buffer_capacity") == 1200
    assert get("flowscope_storage_write_seconds_count") == 1
    assert get("flowscope_storage_write_seconds_bucket", {"le": "0.025"}) == 1
    assert get("flowscope_storage_rows_written_total") == 500
    assert get("flowscope_storage_spool_bytes") == 4096
    assert get("flowscope_connected_nodes") == 2
    assert get("flowscope_unavailable_nodes") == 1


def test_serve_exposes_flow_and_health_metrics_over_http():
    registry = CollectorRegistry()
    metrics = FlowMetrics("flow drop", registry)
    HealthMetrics(registry)
    for flow in sf.shop_round():
        metrics.observe(flow)
    server, port = serve(registry, "127.0.0.1:0")
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as resp:
            text = resp.read().decode()
    finally:
        server.shutdown()
        server.server_close()
    assert 'hubble_drop_total{protocol="TCP",reason="POLICY_DENIED"} 1.0' in text
    assert "flowscope_events_total 0.0" in text
    assert 'flowscope_metrics_cardinality_refused_total{metric="hubble_flows_processed_total"} 0.0' in text


@pytest.mark.parametrize("address, expected", [
    (":9965", ("0.0.0.0", 9965)), ("127.0.0.1:0", ("127.0.0.1", 0)), ("[::1]:9965", ("::1", 9965)),
])
def test_parse_address(address, expected):
    assert parse_address(address) == expected


@pytest.mark.parametrize("address", ["9965", "host:port", ":70000"])
def test_bad_address_names_it(address):
    with pytest.raises(UserError, match="metrics address"):
        parse_address(address)


def test_serve_over_mutual_tls(test_pki):
    import ssl

    from common.tls import TLSConfig

    registry = CollectorRegistry()
    metrics = FlowMetrics("flow", registry)
    metrics.observe(sf.shop_round()[0])
    server, port = serve(registry, "127.0.0.1:0", TLSConfig(test_pki.server.cert, test_pki.server.key,
                                                           client_ca=test_pki.ca))
    url = f"https://localhost:{port}/metrics"
    try:
        context = ssl.create_default_context(cafile=test_pki.ca)
        context.load_cert_chain(test_pki.client.cert, test_pki.client.key)
        with urllib.request.urlopen(url, context=context, timeout=5) as resp:
            assert "hubble_flows_processed_total" in resp.read().decode()
        with pytest.raises((ssl.SSLError, urllib.error.URLError, ConnectionResetError)):
            urllib.request.urlopen(url, context=ssl.create_default_context(cafile=test_pki.ca), timeout=5).read()
    finally:
        server.shutdown()
        server.server_close()
    with pytest.raises(UserError, match=r"server key .*client\.key does not belong to certificate"):
        serve(registry, "127.0.0.1:0", TLSConfig(test_pki.server.cert, test_pki.client.key))


def test_watch_status_reads_the_observer_at_scrape_time():
    from collector.observer import Observer

    observer = Observer("node-a", ring_capacity=64)
    registry = CollectorRegistry()
    health = HealthMetrics(registry)
    health.watch_status(observer.status)
    for flow in sf.shop_round():
        observer.publish(flow)
    get = registry.get_sample_value
    status = observer.status()
    assert status.num_flows > 0
    assert get("flowscope_ring_buffer_capacity") == status.max_flows
    assert get("flowscope_ring_buffer_flows") == status.num_flows
    assert get("flowscope_ring_buffer_fill_ratio") == status.num_flows / status.max_flows
    assert get("flowscope_connected_nodes") == 0  # a node's observer knows no other nodes
