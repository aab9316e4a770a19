"""A relay started while its ClickHouse server is down (issue #16): it starts, follows its collectors,
spools, says "storage unavailable" in ServerStatus and metrics; once the server is started every flow of
the outage is stored exactly once. A real clickhouse-server, not started until the test says so."""

import time

import pytest

from lab.testbed.clickhouse import ClickHouseServer, free_port, random_database
from lab.testbed.wait import wait_for
from relay import Peer
from tests.relay.nodes import make_flow


@pytest.mark.integration  # starts its own ClickHouse server once the relay runs without it
def test_relay_starts_without_clickhouse_and_stores_the_outage_once(tmp_path, relay_factory, node_factory):
    from collector.metrics import HealthMetrics
    from prometheus_client import CollectorRegistry
    from storage import DeferredStore, FlowWriter

    server = ClickHouseServer(path=tmp_path / "ch", tcp_port=free_port(), http_port=free_port(),
                              interserver_port=free_port())
    store = DeferredStore(server.store_url(random_database()), retry_s=0.2)
    assert not store.available
    writer = FlowWriter(store, flush_interval=0.2, spool_dir=str(tmp_path / "spool"), retry_max=0.5)
    node = node_factory("node-o")
    t0 = time.time_ns() - 30_000_000_000
    node.publish(*[make_flow(t0 + i * 1_000_000, f"frontend-{i % 5}", "backend-0") for i in range(300)])
    running = relay_factory(store=store, writer=writer)
    try:
        running.relay.add_peer(Peer(node.name, node.address))  # no resume point from storage: no error
        registry = CollectorRegistry()
        health = HealthMetrics(registry)
        health.watch_storage(running.relay.storage_available)
        wait_for(lambda: writer.stats().spool_batches > 0, timeout=30, what="flows spooled")
        status = running.relay.status()
        assert any(entry.startswith("storage unavailable (clickhouse://") for entry in status.unavailable_nodes)
        assert status.num_unavailable_nodes.value == 0  # the nodes themselves are fine
        assert registry.get_sample_value("flowscope_storage_available") == 0.0
        node.publish(*[make_flow(t0 + (300 + i) * 1_000_000, "late-0", "backend-0") for i in range(200)])
        wait_for(lambda: running.relay.hub.seen_flows >= 500, timeout=30, what="500 flows through the relay")

        server.start()
        wait_for(lambda: writer.stats().spool_batches == 0 and writer.stats().written >= 500, timeout=60,
                 what="the spool replayed into ClickHouse")
        writer.flush()
        stored = [f.uuid for f in store.query_flows(limit=0, first=True)]
        assert len(stored) == 500 and set(stored) == {f.uuid for f in node.published}
        assert store.available and registry.get_sample_value("flowscope_storage_available") == 1.0
        assert not any(e.startswith("storage") for e in running.relay.status().unavailable_nodes)
    finally:
        running.stop()
        writer.close()
        server.stop()
