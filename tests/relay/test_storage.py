"""Into storage exactly once, and history from storage: a collector that reconnects and replays adds
no duplicate; a restarted relay answers `since` from storage and then continues live, seamlessly."""

import threading
import time

from google.protobuf import timestamp_pb2

from proto.observer import observer_pb2
from relay import Peer
from lab.testbed.wait import wait_for
from tests.relay.nodes import make_flow, read_until_cancelled, storing_relay, stub


def test_collector_restart_stores_every_flow_exactly_once(node_factory, relay_factory, relay_store):
    a, b = node_factory("node-a"), node_factory("node-b")
    writer = relay_store.writer()
    running = relay_factory(store=relay_store.store, writer=writer)
    for node in (a, b):
        running.relay.add_peer(Peer(node.name, node.address))
    t0 = time.time_ns() - 60_000_000_000
    a.publish(*[make_flow(t0 + i * 1_000_000, f"a-{i}", "db-0") for i in range(200)])
    b.publish(*[make_flow(t0 + i * 1_000_000, f"b-{i}", "db-0") for i in range(200)])
    wait_for(lambda: running.relay.stored_flows == 400, what="400 flows handed to storage")
    a.kill()
    wait_for(lambda: running.relay.status().num_unavailable_nodes.value == 1, what="node-a unavailable")
    a.publish(*[make_flow(time.time_ns(), f"late-{i}", "db-0") for i in range(5)])
    a.restart()  # same ring: it replays the last seconds before the break
    wait_for(lambda: running.relay.status().num_connected_nodes.value == 2, what="node-a back")
    wait_for(lambda: running.relay.stored_flows == 405, what="the 5 flows published while down")
    writer.flush()
    namespaces = stub(running.address).GetNamespaces(observer_pb2.GetNamespacesRequest(), timeout=10).namespaces
    assert [n.namespace for n in namespaces] == ["shop"]
    running.stop()
    writer.close()
    uuids = relay_store.uuids()
    assert len(uuids) == len(set(uuids)) == 405
    assert set(uuids) == {f.uuid for f in a.published + b.published}


def test_restarted_relay_answers_since_from_storage_then_live(node_factory, relay_factory, relay_store):
    a = node_factory("node-a")
    past = [make_flow(time.time_ns() - (600 - i) * 1_000_000_000, f"before-{i}", "db-0") for i in range(50)]
    a.publish(*past)
    first, writer = storing_relay(relay_factory, relay_store, a, 50)
    first.stop()
    writer.close()

    # The collector restarts too, with an empty ring: from now on only storage has the old flows.
    a.kill()
    fresh = node_factory("node-a")
    writer = relay_store.writer()
    second = relay_factory(store=relay_store.store, writer=writer)
    second.relay.add_peer(Peer(fresh.name, fresh.address))
    wait_for(lambda: second.relay.status().num_connected_nodes.value == 1, what="node-a connected")
    assert second.relay.status().num_flows == 0

    since = timestamp_pb2.Timestamp()
    since.FromNanoseconds(time.time_ns() - 3600 * 1_000_000_000)
    history = list(stub(second.address).GetFlows(observer_pb2.GetFlowsRequest(since=since), timeout=10))
    assert [r.flow.uuid for r in history] == [f.uuid for f in past]
    assert all(r.node_name == "node-a" for r in history)

    received: list[observer_pb2.GetFlowsResponse] = []
    call = stub(second.address).GetFlows(observer_pb2.GetFlowsRequest(since=since, follow=True))
    threading.Thread(target=read_until_cancelled, args=(call, received), daemon=True).start()
    wait_for(lambda: len(received) == 50, what="history part of the follow stream")
    live = [make_flow(time.time_ns(), f"after-{i}", "db-0") for i in range(5)]
    fresh.publish(*live)
    wait_for(lambda: len(received) >= 55, what="live flows after the history")
    time.sleep(0.3)
    call.cancel()
    assert [r.flow.uuid for r in received if r.HasField("flow")] == [f.uuid for f in past + live]
    second.stop()
    writer.close()
    assert sorted(relay_store.uuids()) == sorted(f.uuid for f in past + live)
