"""Observer.read without gRPC: chunking, and the serialized path matching the message path."""
from collector.observer import ALL, Observer, parse_request
from collector.observer.observer import CHUNK
from proto.flow import flow_pb2
from proto.observer import observer_pb2
from tests.collector.filters.sample import make_flow

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
