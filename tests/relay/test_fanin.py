"""Two real collector Observer servers -> relay -> one merged, time-ordered stream, with the calls the
hubble CLI makes (health check, ServerStatus, GetFlows number=20, follow with number=0, GetNodes)."""

import threading
import time

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from proto.flow import flow_pb2
from proto.observer import observer_pb2, observer_pb2_grpc
from proto.relay import relay_pb2
from relay import Peer
from lab.testbed.wait import wait_for
from tests.relay.nodes import make_flow, read_until_cancelled, stub


def flow_times(responses) -> list[int]:
    return [r.flow.time.ToNanoseconds() for r in responses if r.HasField("flow")]


def two_nodes(node_factory, relay_factory, **relay_options):
    a, b = node_factory("node-a"), node_factory("node-b")
    running = relay_factory(**relay_options)
    for node in (a, b):
        running.relay.add_peer(Peer(node.name, node.address))
    wait_for(lambda: running.relay.status().num_connected_nodes.value == 2, what="both nodes connected")
    return a, b, running


def test_two_nodes_merge_into_one_time_ordered_stream_with_node_names(node_factory, relay_factory):
    a, b, running = two_nodes(node_factory, relay_factory)
    t0 = time.time_ns() - 10_000_000_000
    # node-b publishes its flows late and in one burst: the relay must still interleave them by time.
    a.publish(*[make_flow(t0 + i * 2_000_000, "frontend-1", "backend-1") for i in range(30)])
    b.publish(*[make_flow(t0 + i * 2_000_000 + 1_000_000, "backend-2", "db-0", port=5432) for i in range(30)])
    relay = stub(running.address)
    wait_for(lambda: running.relay.status().seen_flows == 60, what="60 flows at the relay")

    # What `hubble status` does: health check first, then ServerStatus.
    channel = grpc.insecure_channel(running.address)
    health = health_pb2_grpc.HealthStub(channel).Check(
        health_pb2.HealthCheckRequest(service="hubble.server.Observer"), timeout=5)
    assert health.status == health_pb2.HealthCheckResponse.SERVING
    status = relay.ServerStatus(observer_pb2.ServerStatusRequest(), timeout=5)
    assert (status.num_flows, status.seen_flows, status.num_connected_nodes.value,
            status.num_unavailable_nodes.value) == (60, 60, 2, 0)
    assert status.max_flows == 65536 and status.uptime_ns > 0 and status.flows_rate > 0

    # `hubble observe`: number=20 -> the newest 20, oldest first, alternating nodes.
    last = list(relay.GetFlows(observer_pb2.GetFlowsRequest(number=20), timeout=10))
    assert len(last) == 20
    assert flow_times(last) == sorted(flow_times(last))
    assert flow_times(last)[-1] == t0 + 29 * 2_000_000 + 1_000_000
    assert [r.node_name for r in last] == ["node-a", "node-b"] * 10
    assert all(r.flow.node_name == r.node_name for r in last)
    everything = list(relay.GetFlows(observer_pb2.GetFlowsRequest(number=2**64 - 1), timeout=10))
    assert flow_times(everything) == sorted(t0 + i * 1_000_000 for i in range(60))

    # `hubble list nodes`
    nodes = relay.GetNodes(observer_pb2.GetNodesRequest(), timeout=5).nodes
    assert [(n.name, n.address, n.state) for n in nodes] == [
        ("node-a", a.address, relay_pb2.NODE_CONNECTED), ("node-b", b.address, relay_pb2.NODE_CONNECTED)]
    assert [n.num_flows for n in nodes] == [30, 30]


def test_follow_with_number_zero_streams_new_flows_in_time_order(node_factory, relay_factory):
    a, b, running = two_nodes(node_factory, relay_factory)
    a.publish(make_flow(time.time_ns() - 5_000_000_000, "old-1", "old-2"))
    wait_for(lambda: running.relay.status().seen_flows == 1, what="the old flow")
    received: list[observer_pb2.GetFlowsResponse] = []
    call = stub(running.address).GetFlows(observer_pb2.GetFlowsRequest(follow=True))
    threading.Thread(target=read_until_cancelled, args=(call, received), daemon=True).start()
    wait_for(lambda: running.relay.hub.followers == 1, what="the follow stream subscribed")
    t0 = time.time_ns()
    for i in range(20):
        (a if i % 2 else b).publish(make_flow(t0 + i * 1_000_000, f"client-{i}", "server-0"))
    wait_for(lambda: len([r for r in received if r.HasField("flow")]) == 20, what="20 followed flows")
    b.observer.publish_lost(flow_pb2.LostEvent(source=flow_pb2.PERF_EVENT_RING_BUFFER, num_events_lost=7))
    wait_for(lambda: any(r.HasField("lost_events") for r in received), what="the lost event")
    call.cancel()
    [lost] = [r for r in received if r.HasField("lost_events")]
    assert (lost.node_name, lost.lost_events.source, lost.lost_events.num_events_lost) == (
        "node-b", flow_pb2.PERF_EVENT_RING_BUFFER, 7)
    flows = [r for r in received if r.HasField("flow")]
    # number=0 under follow: only new flows, none of the history
    assert [r.flow.source.pod_name for r in flows] == [f"client-{i}" for i in range(20)]
    assert [r.node_name for r in flows] == ["node-b", "node-a"] * 10


def test_filters_since_until_and_first(node_factory, relay_factory):
    a, b, running = two_nodes(node_factory, relay_factory)
    t0 = time.time_ns() - 60_000_000_000
    a.publish(*[make_flow(t0 + i * 1_000_000_000, f"frontend-{i}", "backend-0") for i in range(10)])
    b.publish(*[make_flow(t0 + i * 1_000_000_000 + 500_000_000, "dns-0", "kube-dns-0", namespace="kube-system",
                          port=53, protocol="udp", verdict=flow_pb2.DROPPED) for i in range(10)])
    wait_for(lambda: running.relay.status().seen_flows == 20, what="20 flows")
    relay = stub(running.address)

    def get(**kw):
        return list(relay.GetFlows(observer_pb2.GetFlowsRequest(**kw), timeout=10))

    dropped = get(whitelist=[flow_pb2.FlowFilter(verdict=[flow_pb2.DROPPED])])
    assert len(dropped) == 10 and {r.node_name for r in dropped} == {"node-b"}
    not_udp = get(blacklist=[flow_pb2.FlowFilter(protocol=["udp"])])
    assert len(not_udp) == 10 and {r.flow.destination.pod_name for r in not_udp} == {"backend-0"}
    pods = get(whitelist=[flow_pb2.FlowFilter(source_pod=["shop/frontend-3"]),
                          flow_pb2.FlowFilter(source_pod=["kube-system/"])])
    assert len(pods) == 11
    since = flow_pb2.Flow().time.__class__()
    since.FromNanoseconds(t0 + 5_000_000_000)
    until = since.__class__()
    until.FromNanoseconds(t0 + 7_000_000_000)
    window = get(since=since, until=until)
    assert flow_times(window) == [t0 + n * 500_000_000 for n in range(10, 15)]
    first = get(number=3, first=True)
    assert flow_times(first) == [t0, t0 + 500_000_000, t0 + 1_000_000_000]


def test_collector_killed_and_restarted_is_reported_and_not_duplicated(node_factory, relay_factory):
    a, b, running = two_nodes(node_factory, relay_factory)
    t0 = time.time_ns() - 30_000_000_000
    a.publish(*[make_flow(t0 + i * 1_000_000, f"a-{i}", "x-0") for i in range(50)])
    b.publish(*[make_flow(t0 + i * 1_000_000, f"b-{i}", "x-0") for i in range(50)])
    wait_for(lambda: running.relay.status().seen_flows == 100, what="100 flows")
    events: list[observer_pb2.GetFlowsResponse] = []
    call = stub(running.address).GetFlows(observer_pb2.GetFlowsRequest(follow=True))
    threading.Thread(target=read_until_cancelled, args=(call, events), daemon=True).start()
    wait_for(lambda: running.relay.hub.followers == 1, what="the follow stream subscribed")

    a.kill()
    wait_for(lambda: running.relay.status().num_unavailable_nodes.value == 1, what="node-a unavailable")
    status = stub(running.address).ServerStatus(observer_pb2.ServerStatusRequest(), timeout=5)
    assert list(status.unavailable_nodes) == ["node-a"] and status.num_connected_nodes.value == 1
    nodes = {n.name: n.state for n in stub(running.address).GetNodes(observer_pb2.GetNodesRequest()).nodes}
    assert nodes == {"node-a": relay_pb2.NODE_UNAVAILABLE, "node-b": relay_pb2.NODE_CONNECTED}
    # While it is down, a new follower is told at once which node it cannot hear from.
    early = stub(running.address).GetFlows(observer_pb2.GetFlowsRequest(follow=True))
    first = next(early)
    early.cancel()
    assert first.node_status.state_change == relay_pb2.NODE_UNAVAILABLE
    assert list(first.node_status.node_names) == ["node-a"]

    # The collector comes back with its ring (same process): it replays, the relay drops the replay.
    a.publish(make_flow(time.time_ns(), "a-after", "x-0"))
    a.restart()
    wait_for(lambda: running.relay.status().num_connected_nodes.value == 2, what="node-a connected again")
    wait_for(lambda: running.relay.status().seen_flows == 101, what="the flow published while down")
    wait_for(lambda: any(e.HasField("flow") for e in events), what="that flow on the follow stream")
    call.cancel()
    statuses = [(e.node_status.state_change, list(e.node_status.node_names))
                for e in events if e.HasField("node_status")]
    assert statuses == [(relay_pb2.NODE_UNAVAILABLE, ["node-a"]), (relay_pb2.NODE_CONNECTED, ["node-a"])]
    assert [e.flow.source.pod_name for e in events if e.HasField("flow")] == ["a-after"]
    everything = list(stub(running.address).GetFlows(observer_pb2.GetFlowsRequest(number=2**64 - 1)))
    uuids = [r.flow.uuid for r in everything]
    assert len(uuids) == len(set(uuids)) == 101
    assert running.relay.nodes()[0].info.duplicates == 50


def test_many_follow_clients_each_get_every_flow_and_leave_cleanly(node_factory, relay_factory):
    # More follow streams than the server has RPC threads (64): a follow stream must not hold a thread,
    # or client 65 would hang (every `hubble observe -f` and every UI tab holds one stream).
    a, b, running = two_nodes(node_factory, relay_factory)
    clients = 80
    received: list[list[observer_pb2.GetFlowsResponse]] = [[] for _ in range(clients)]
    channels = [grpc.insecure_channel(running.address) for _ in range(clients)]
    calls = [observer_pb2_grpc.ObserverStub(channel).GetFlows(observer_pb2.GetFlowsRequest(follow=True))
             for channel in channels]
    for call, into in zip(calls, received):
        threading.Thread(target=read_until_cancelled, args=(call, into), daemon=True).start()
    wait_for(lambda: running.relay.hub.subscribers == clients, what=f"{clients} follow subscriptions")
    t0 = time.time_ns()
    a.publish(*[make_flow(t0 + i * 1_000_000, f"client-{i}", "server-0") for i in range(5)])
    b.publish(*[make_flow(t0 + i * 1_000_000 + 500_000, f"client-{i}", "server-1") for i in range(5)])
    wait_for(lambda: all(len(flow_times(r)) == 10 for r in received), what="10 flows on every stream")
    assert all(flow_times(r) == sorted(t0 + i * 500_000 for i in range(10)) for r in received)
    # Status calls are still answered while all those streams are open.
    assert stub(running.address).ServerStatus(observer_pb2.ServerStatusRequest(), timeout=5).seen_flows == 10
    for call in calls:
        call.cancel()
    wait_for(lambda: running.relay.hub.subscribers == 0, what="every subscription released")
    for channel in channels:
        channel.close()
