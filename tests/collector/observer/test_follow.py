"""Follow streams over real gRPC: new flows arrive within a bound, history then live without gap,
a slow follower gets a LostEvent accounting for every flow it missed, until and cancel end streams."""
import time

import grpc
from google.protobuf import timestamp_pb2

from proto.flow import flow_pb2
from proto.observer import observer_pb2
from tests.common.filters.sample import make_flow
from tests.collector.observer.streams import BOUND, reader, take, wait_for_followers

Req = observer_pb2.GetFlowsRequest


def test_follow_receives_new_flows_only(serve):
    served = serve()
    served.observer.publish(make_flow(sport=1))
    call = served.stub.GetFlows(Req(follow=True))
    q = reader(call)
    wait_for_followers(served.observer)
    start = time.monotonic()
    for port in (2, 3, 4):
        served.observer.publish(make_flow(sport=port))
    got = take(q, 3)
    assert time.monotonic() - start < BOUND
    assert [r.flow.l4.TCP.source_port for r in got] == [2, 3, 4]
    call.cancel()


def test_follow_with_number_sends_history_then_live_without_gap(serve):
    served = serve()
    for port in range(1, 6):
        served.observer.publish(make_flow(sport=port))
    call = served.stub.GetFlows(Req(number=2, follow=True,
                                    whitelist=[flow_pb2.FlowFilter(destination_port=["8080"])]))
    q = reader(call)
    got = take(q, 2)
    served.observer.publish(make_flow(sport=6, dport=9999))  # filtered out
    served.observer.publish(make_flow(sport=7))
    got += take(q, 1)
    assert [r.flow.l4.TCP.source_port for r in got] == [4, 5, 7]
    call.cancel()


def test_slow_follower_gets_lost_event_and_never_blocks_the_writer(serve):
    """The client stops reading; the writer laps the ring. Once the client reads again it gets what
    fit in transit, a HUBBLE_RING_BUFFER LostEvent, then the newest flows: every flow accounted for."""
    served = serve(capacity=64)
    labels = [f"k8s:padding-{i}=x" * 4 for i in range(40)]  # big flows fill the HTTP/2 window fast
    call = served.stub.GetFlows(Req(follow=True))
    it = iter(call)
    wait_for_followers(served.observer)
    total = 20000
    start = time.monotonic()
    for port in range(total):
        served.observer.publish(make_flow(sport=port % 65536, src=flow_pb2.Endpoint(labels=labels)))
    publish_seconds = time.monotonic() - start
    assert publish_seconds < 30  # the writer did not wait for the reader
    flows = lost = 0
    lost_events = []
    while flows + lost < total:
        r = next(it)
        if r.HasField("lost_events"):
            lost_events.append(r.lost_events)
            lost += r.lost_events.num_events_lost
        else:
            flows += 1
    assert flows + lost == total
    assert lost_events and all(e.source == flow_pb2.HUBBLE_RING_BUFFER for e in lost_events)
    call.cancel()


def test_follow_until_ends_the_stream(serve):
    served = serve()
    until = timestamp_pb2.Timestamp()
    until.FromNanoseconds(time.time_ns() + 300_000_000)
    got = list(served.stub.GetFlows(Req(follow=True, until=until), timeout=BOUND))
    assert got == []


def test_cancel_and_graceful_stop_end_follow_streams(serve):
    served = serve()
    calls = [served.stub.GetFlows(Req(follow=True)) for _ in range(3)]
    queues = [reader(c) for c in calls]
    wait_for_followers(served.observer, 3)
    calls[0].cancel()
    assert isinstance(queues[0].get(timeout=BOUND), grpc.RpcError)
    served.server.stop(grace=0.5).wait(BOUND)
    for q in queues[1:]:
        end = q.get(timeout=BOUND)
        assert isinstance(end, grpc.RpcError) and end.code() in (grpc.StatusCode.UNAVAILABLE,
                                                                 grpc.StatusCode.CANCELLED)
