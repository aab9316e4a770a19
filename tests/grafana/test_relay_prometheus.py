"""The real relay (following a real collector Observer and a dead address) exposes its health through
HealthMetrics.watch_status; a real Prometheus scrapes it and the Health dashboard's node and ring
panels see the relay's state."""

from __future__ import annotations

from prometheus_client import CollectorRegistry

from collector.metrics import HealthMetrics, serve
from relay import Peer
from lab.testbed import sample_flows as sf
from tests.fixtures.clickhouse import free_port
from tests.fixtures.prometheus import positive


def test_relay_nodes_and_ring_reach_prometheus(prometheus_factory, node_factory, relay_factory):
    node = node_factory("node-a")
    running = relay_factory()
    running.relay.add_peer(Peer("node-a", node.address))
    running.relay.add_peer(Peer("node-gone", f"127.0.0.1:{free_port()}"))  # nothing listens there
    for flow in sf.shop_round():
        node.observer.publish(flow)
    registry = CollectorRegistry()
    HealthMetrics(registry).watch_status(running.relay.status)
    server, port = serve(registry, "127.0.0.1:0")
    try:
        prom = prometheus_factory({"flowscope-relay": [f"127.0.0.1:{port}"]})
        prom.wait_up()
        connected = prom.wait_for("flowscope_connected_nodes", until=positive)
        assert float(connected[0]["value"][1]) == 1
        unavailable = prom.wait_for("flowscope_unavailable_nodes", until=positive)
        assert float(unavailable[0]["value"][1]) == 1
        ring = prom.wait_for("flowscope_ring_buffer_flows", until=positive)
        assert float(ring[0]["value"][1]) == len(sf.shop_round())
    finally:
        server.shutdown()
        server.server_close()
