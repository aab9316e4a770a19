"""History through the relay: a restarted relay's stored flows come back from query_flows over gRPC,
with the same window and filter semantics as the store itself."""

import time

import pytest

from proto.flow import flow_pb2
from relay.history_client import RelayFlowSource, RelayUnavailable
from tests.relay.nodes import make_flow, storing_relay


def test_query_flows_through_the_relay_matches_the_store(node_factory, relay_factory, relay_store):
    node = node_factory("node-a")
    t0 = time.time_ns() - 300 * 1_000_000_000
    flows = [make_flow(t0 + i * 1_000_000_000, "web-1", "db-0" if i % 2 else "web-2") for i in range(40)]
    node.publish(*flows)
    running, writer = storing_relay(relay_factory, relay_store, node, 40)
    writer.flush()

    source = RelayFlowSource(running.address)
    window = source.query_flows(since=t0 + 10 * 1_000_000_000, until=t0 + 19 * 1_000_000_000,
                                limit=None, first=True)
    assert [f.uuid for f in window] == [f.uuid for f in flows[10:20]]
    to_db = flow_pb2.FlowFilter(destination_pod=["shop/db-0"])
    from_store = relay_store.store.query_flows(whitelist=[to_db], since=t0, limit=None, first=True)
    via_relay = source.query_flows(whitelist=[to_db], since=t0, limit=None, first=True)
    assert [f.uuid for f in via_relay] == [f.uuid for f in from_store] and len(via_relay) == 20
    assert [f.uuid for f in source.query_flows(since=t0, limit=3)] == [f.uuid for f in flows[37:]]
    source.close()
    running.stop()
    writer.close()


def test_unreachable_relay_is_a_clear_error():
    source = RelayFlowSource("127.0.0.1:1", timeout_s=2)
    with pytest.raises(RelayUnavailable, match="relay 127.0.0.1:1: cannot connect: Connection refused"):
        source.query_flows(since=0)
