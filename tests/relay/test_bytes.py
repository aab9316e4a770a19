"""Flows cross the relay as the bytes their collector sent: two real collectors -> relay -> storage and
a follow client, each flow stored once with its time and uuid, forwarded byte for byte (even bytes whose
fields are not in protobuf's canonical order, which a parse and serialize would reorder), and filters
still apply. Malformed flow bytes from a node are counted and logged, and lose no other flow."""

import logging
import threading
import time

import grpc

from collector.observer.wire import encoded_flow
from proto.flow import flow_pb2
from proto.observer import observer_pb2
from proto.wire import string_field, tag, varint
from relay import Peer
from lab.testbed.wait import wait_for
from tests.relay.nodes import make_flow

NS = 1_000_000_000


def reordered(flow: flow_pb2.Flow) -> bytes:
    """The flow's bytes with uuid and node_name before time: valid protobuf, not canonical."""
    head = flow_pb2.Flow(uuid=flow.uuid, node_name=flow.node_name).SerializeToString()
    rest = flow_pb2.Flow()
    rest.CopyFrom(flow)
    rest.ClearField("uuid")
    rest.ClearField("node_name")
    return head + rest.SerializeToString()


def publish_bytes(node, flows: list[flow_pb2.Flow], data: list[bytes]) -> None:
    node.observer.publish_many([encoded_flow(d, f.time.ToNanoseconds(), node.name) for f, d in zip(flows, data)])
    node.published.extend(flows)


def raw_follow(address: str, request: observer_pb2.GetFlowsRequest, into: list[bytes]):
    """A follow client that keeps each response's bytes as they came (as hubble's Go client reads them)."""
    call = grpc.insecure_channel(address).unary_stream(
        "/observer.Observer/GetFlows", request_serializer=observer_pb2.GetFlowsRequest.SerializeToString,
        response_deserializer=None)(request)

    def read():
        try:
            into.extend(call)
        except grpc.RpcError as err:
            assert err.code() == grpc.StatusCode.CANCELLED
    threading.Thread(target=read, daemon=True).start()
    return call


def expected_response(flow: flow_pb2.Flow, data: bytes, node_name: str) -> bytes:
    """GetFlowsResponse(flow=<data>, node_name, time=flow.time), framed by hand around the exact bytes."""
    rest = observer_pb2.GetFlowsResponse(node_name=node_name, time=flow.time).SerializeToString()
    return tag(observer_pb2.GetFlowsResponse, "flow") + varint(len(data)) + data + rest


def flows_in(responses: list[bytes]) -> list[bytes]:
    """The flow responses of a follow stream (it also tells of nodes connecting)."""
    return [r for r in responses if r.startswith(tag(observer_pb2.GetFlowsResponse, "flow"))]


def uuid_of(response: bytes) -> str:
    return observer_pb2.GetFlowsResponse.FromString(response).flow.uuid


def test_two_collectors_flows_stored_and_forwarded_byte_identical(node_factory, relay_factory, relay_store):
    a, b = node_factory("node-a"), node_factory("node-b")
    writer = relay_store.writer()
    running = relay_factory(store=relay_store.store, writer=writer)
    everything, frontend_only = [], []
    calls = [raw_follow(running.address, observer_pb2.GetFlowsRequest(follow=True), everything)]
    frontend = observer_pb2.GetFlowsRequest(follow=True, whitelist=[flow_pb2.FlowFilter(source_pod=["shop/frontend-"])])
    calls.append(raw_follow(running.address, frontend, frontend_only))
    wait_for(lambda: running.relay.hub.followers == 2, what="two follow clients")
    for node in (a, b):
        running.relay.add_peer(Peer(node.name, node.address))
    wait_for(lambda: running.relay.status().num_connected_nodes.value == 2, what="both nodes connected")

    t0 = time.time_ns() - 30 * NS
    sent: dict[str, tuple[flow_pb2.Flow, bytes, str]] = {}
    for node, offset in ((a, 0), (b, 500_000)):
        flows = [make_flow(t0 + offset + i * 1_000_000, f"{'frontend' if i % 3 == 0 else 'cart'}-{i}", "db-0")
                 for i in range(300)]
        for flow in flows:
            flow.node_name = node.name
        data = [reordered(f) for f in flows]
        assert data[0] != flows[0].SerializeToString(), "the test's bytes must differ from protobuf's own"
        publish_bytes(node, flows, data)
        sent.update((f.uuid, (f, d, node.name)) for f, d in zip(flows, data))

    wait_for(lambda: running.relay.stored_flows == 600, what="600 flows handed to storage")
    wait_for(lambda: len(flows_in(everything)) == 600, what="600 flows to the follow client")
    everything = flows_in(everything)
    by_uuid = {uuid_of(r): r for r in everything}
    assert set(by_uuid) == set(sent)
    for uuid, (flow, data, node_name) in sent.items():
        assert by_uuid[uuid] == expected_response(flow, data, node_name), "forwarded as the collector sent it"
    times = [observer_pb2.GetFlowsResponse.FromString(r).flow.time.ToNanoseconds() for r in everything]
    assert times == sorted(times), "the two nodes' flows merged in time order"

    wanted = {u for u, (f, _, _) in sent.items() if f.source.pod_name.startswith("frontend-")}
    wait_for(lambda: len(flows_in(frontend_only)) == len(wanted), what="the filtered client's flows")
    frontend_only = flows_in(frontend_only)
    assert len(wanted) == 200
    assert {uuid_of(r) for r in frontend_only} == wanted
    assert all(r == by_uuid[uuid_of(r)] for r in frontend_only)

    # Ring history (no follow) is the same bytes, with a filter too.
    history = list(grpc.insecure_channel(running.address).unary_stream(
        "/observer.Observer/GetFlows", request_serializer=observer_pb2.GetFlowsRequest.SerializeToString,
        response_deserializer=None)(observer_pb2.GetFlowsRequest(
            number=1000, whitelist=[flow_pb2.FlowFilter(node_name=["node-b"])]), timeout=10))
    assert len(history) == 300 and all(by_uuid[uuid_of(r)] == r
                                       for r in history)

    writer.flush()
    stored = relay_store.store.query_flows(limit=0, first=True)
    assert len(stored) == 600 and {f.uuid for f in stored} == set(sent)
    for flow in stored:
        original, data, _ = sent[flow.uuid]
        assert flow == original and flow_pb2.Flow.FromString(data) == original
        assert flow.time.ToNanoseconds() == original.time.ToNanoseconds()
    assert writer.stats().malformed == 0 and running.relay.malformed == 0
    for call in calls:
        call.cancel()


def test_malformed_flow_bytes_are_counted_and_lose_no_other_flow(node_factory, relay_factory, relay_store, caplog):
    a, b = node_factory("node-a"), node_factory("node-b")
    writer = relay_store.writer()
    running = relay_factory(store=relay_store.store, writer=writer)
    received: list[bytes] = []
    call = raw_follow(running.address, observer_pb2.GetFlowsRequest(follow=True), received)
    wait_for(lambda: running.relay.hub.followers == 1, what="a follow client")
    for node in (a, b):
        running.relay.add_peer(Peer(node.name, node.address))
    wait_for(lambda: running.relay.status().num_connected_nodes.value == 2, what="both nodes connected")

    t0 = time.time_ns() - 30 * NS
    good_a = [make_flow(t0 + i * 1_000_000, f"a-{i}", "db-0") for i in range(100)]
    good_b = [make_flow(t0 + i * 1_000_000 + 1, f"b-{i}", "db-0") for i in range(100)]
    # In a's stream, between good flows: bytes that are no protobuf at all, and a flow framed right at
    # the top whose l4 field holds garbage (only a full parse finds that: the writer's, or a filter's).
    broken = make_flow(t0 + 50 * 1_000_000, "broken-0", "db-0")
    broken_inside = make_flow(t0 + 60 * 1_000_000, "broken-1", "db-0")
    inside_data = broken_inside.SerializeToString() + string_field(tag(flow_pb2.Flow, "l4"), b"\xff\xff\xff")
    flows = good_a[:50] + [broken] + good_a[50:60] + [broken_inside] + good_a[60:]
    data = [f.SerializeToString() for f in flows]
    data[50] = b"\xff\xff\xff\xff"
    data[61] = inside_data
    with caplog.at_level(logging.WARNING):
        publish_bytes(a, flows, data)
        b.publish(*good_b)
        wait_for(lambda: running.relay.stored_flows == 201, what="every flow framed right handed to storage")
        writer.flush()
    assert running.relay.malformed == 1
    assert running.relay.status().num_connected_nodes.value == 2, "the node's stream goes on"
    assert "node node-a (localhost:" in caplog.text and "malformed responses" in caplog.text
    assert writer.stats().malformed == 1
    assert "not valid Flow bytes" in caplog.text
    stored = {f.uuid for f in relay_store.store.query_flows(limit=0, first=True)}
    assert stored == {f.uuid for f in good_a + good_b}

    # Still relaying afterwards: more flows from both nodes arrive.
    later = [make_flow(time.time_ns(), f"later-{i}", "db-0") for i in range(5)]
    a.publish(*later[:3])
    b.publish(*later[3:])
    wait_for(lambda: running.relay.stored_flows == 206, what="the later flows")
    wait_for(lambda: len(flows_in(received)) == 206, what="every flow framed right to the follow client")
    received = flows_in(received)
    # The flow with garbage inside is forwarded as its collector sent it (the relay reads only its time
    # and uuid); every other response is a valid flow.
    garbage = [r for r in received if r.startswith(tag(observer_pb2.GetFlowsResponse, "flow") + varint(len(inside_data)) + inside_data)]
    assert len(garbage) == 1
    assert {uuid_of(r) for r in received if r not in garbage} == {f.uuid for f in good_a + good_b + later}
    call.cancel()
