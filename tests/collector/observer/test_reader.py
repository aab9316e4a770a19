"""Observer.read without gRPC: chunking, and the serialized path matching the message path."""
from collector.observer import ALL, Observer, parse_request
from collector.observer.observer import CHUNK
from proto.flow import flow_pb2
from proto.observer import observer_pb2
from tests.common.filters.sample import make_flow

Req = observer_pb2.GetFlowsRequest


def filled(n: int) -> Observer:
    observer = Observer("node-r", ring_capacity=n)
    for i in range(n):
        observer.publish(make_flow(sport=i % 65536))
    observer.publish_lost(flow_pb2.LostEvent(num_events_lost=1))
    return observer


def test_history_comes_in_bounded_chunks():
    observer = filled(2 * CHUNK + 10)
    chunks = list(observer.read(parse_request(Req(number=ALL))))
    assert [len(c) for c in chunks] == [CHUNK, CHUNK, 10]
    chunks = list(observer.read(parse_request(Req(number=CHUNK + 5))))
    assert [len(c) for c in chunks] == [CHUNK, 5]
    assert chunks[-1][-1].HasField("lost_events")


def test_encoded_answers_equal_message_answers():
    observer = filled(300)
    for request in (Req(number=ALL), Req(number=7),
                    Req(number=5, first=True, whitelist=[flow_pb2.FlowFilter(source_port=["3", "4"])]),
                    Req(number=ALL, blacklist=[flow_pb2.FlowFilter(source_port=["3"])])):
        query = parse_request(request)
        messages = [r for c in observer.read(query) for r in c]
        encoded = [observer_pb2.GetFlowsResponse.FromString(b) for c in observer.read(query, encoded=True)
                   for b in c]
        assert messages == encoded and messages


def test_a_published_batch_equals_the_same_flows_published_one_by_one():
    one_by_one, batched = Observer("node-r", ring_capacity=50), Observer("node-r", ring_capacity=50)
    flows = [make_flow(sport=i, uuid=f"u-{i}") for i in range(70)]  # more than the ring holds
    for flow in flows:
        one_by_one.publish(flow)
    batched.publish_many([make_flow(sport=i, uuid=f"u-{i}") for i in range(70)])
    query = parse_request(Req(number=ALL))
    kept = [r for c in batched.read(query) for r in c]
    assert kept == [r for c in one_by_one.read(query) for r in c]
    assert [r.flow.l4.TCP.source_port for r in kept] == list(range(20, 70))  # the newest 50, in order
    assert batched.status().seen_flows == one_by_one.status().seen_flows == 70
    assert batched.status().num_flows == 50
