"""GetFlows over real gRPC: number/first/all, since/until, filters, ring eviction, field mask."""
import grpc
import pytest
from google.protobuf import field_mask_pb2, timestamp_pb2

from collector.observer import ALL
from proto.flow import flow_pb2
from proto.observer import observer_pb2, observer_pb2_grpc
from tests.common.filters.sample import BASE_NS, make_flow

SECOND = 1_000_000_000
Req = observer_pb2.GetFlowsRequest
FF = flow_pb2.FlowFilter


def ts(i: int) -> timestamp_pb2.Timestamp:
    return timestamp_pb2.Timestamp(seconds=(BASE_NS + i * SECOND) // SECOND)


def fill(served, n: int, **kw):
    """n flows, one per second from BASE_NS; source port = 10000 + index, so tests can name them."""
    for i in range(n):
        served.observer.publish(make_flow(sport=10000 + i, time_ns=BASE_NS + i * SECOND, **kw))


def ports(responses) -> list[int]:
    return [r.flow.l4.TCP.source_port - 10000 for r in responses]


@pytest.fixture
def hundred(serve):
    served = serve(capacity=1000)
    fill(served, 100)
    return served


@pytest.mark.parametrize("request_, expected", [
    (Req(number=5), list(range(95, 100))),
    (Req(number=5, first=True), list(range(5))),
    (Req(number=0), list(range(100))),
    (Req(number=ALL), list(range(100))),
    (Req(number=1000), list(range(100))),
    (Req(since=ts(10), until=ts(14)), [10, 11, 12, 13, 14]),
    (Req(since=ts(90)), list(range(90, 100))),
    (Req(until=ts(2)), [0, 1, 2]),
    (Req(since=ts(10), until=ts(19), number=3), [17, 18, 19]),
    (Req(since=ts(10), until=ts(19), number=3, first=True), [10, 11, 12]),
    (Req(number=3, whitelist=[FF(source_port=["10007", "10042", "10077", "10099"])]), [42, 77, 99]),
    (Req(number=ALL, whitelist=[FF(source_port=["10001", "10002"])], blacklist=[FF(source_port=["10002"])]),
     [1]),
])
def test_get_flows_selects_exactly(hundred, request_, expected):
    responses = list(hundred.stub.GetFlows(request_, timeout=10))
    assert ports(responses) == expected
    for r in responses:
        assert r.node_name == "node-1"
        assert r.time == r.flow.time
        assert r.flow.uuid


def test_whitelist_and_blacklist(serve):
    served = serve()
    served.observer.publish(make_flow("10.0.0.1", "10.0.0.2", sport=10000))
    served.observer.publish(make_flow("10.0.0.2", "10.0.0.1", sport=10001, is_reply=True))
    served.observer.publish(make_flow("10.0.0.3", "10.0.0.2", sport=10002, verdict=flow_pb2.DROPPED))
    served.observer.publish(make_flow("10.0.0.4", "10.0.0.5", sport=10003))
    both_sides = [FF(source_ip=["10.0.0.2"]), FF(destination_ip=["10.0.0.2"])]
    got = list(served.stub.GetFlows(Req(number=ALL, whitelist=both_sides), timeout=10))
    assert ports(got) == [0, 1, 2]
    got = list(served.stub.GetFlows(Req(number=ALL, whitelist=both_sides,
                                        blacklist=[FF(verdict=[flow_pb2.DROPPED]), FF(reply=[True])]),
                                    timeout=10))
    assert ports(got) == [0]
    got = list(served.stub.GetFlows(Req(number=ALL, blacklist=both_sides), timeout=10))
    assert ports(got) == [3]


def test_ring_keeps_the_newest_and_counts_everything(serve):
    served = serve(capacity=50)
    fill(served, 120)
    assert ports(served.stub.GetFlows(Req(number=ALL), timeout=10)) == list(range(70, 120))
    assert ports(served.stub.GetFlows(Req(number=2, first=True), timeout=10)) == [70, 71]
    status = served.stub.ServerStatus(observer_pb2.ServerStatusRequest())
    assert (status.num_flows, status.max_flows, status.seen_flows) == (50, 50, 120)


def test_lost_events_from_the_datapath_are_passed_through(serve):
    served = serve()
    fill(served, 2)
    served.observer.publish_lost(flow_pb2.LostEvent(source=flow_pb2.PERF_EVENT_RING_BUFFER, num_events_lost=7))
    got = list(served.stub.GetFlows(Req(number=ALL), timeout=10))
    assert [r.WhichOneof("response_types") for r in got] == ["flow", "flow", "lost_events"]
    assert got[2].lost_events.num_events_lost == 7 and got[2].node_name == "node-1"


def test_field_mask_returns_only_named_fields(hundred):
    mask = field_mask_pb2.FieldMask(paths=["time", "source.pod_name", "verdict"])
    got = list(hundred.stub.GetFlows(Req(number=1, field_mask=mask), timeout=10))[0].flow
    assert got.source.pod_name == "frontend-7d4f9" and got.verdict == flow_pb2.FORWARDED
    assert not got.HasField("IP") and not got.source.labels and not got.uuid


@pytest.mark.parametrize("request_, message", [
    (Req(since=ts(10), until=ts(5)), "since (2023-11-14T22:13:30Z) is after until"),
    (Req(number=10_000_001), "number 10000001 is too large"),
    (Req(number=1, first=True, follow=True), "first and follow cannot be combined"),
    (Req(since=timestamp_pb2.Timestamp(seconds=1, nanos=2_000_000_000)), "since is not a valid timestamp"),
    (Req(whitelist=[FF(http_path=["(unclosed"])]), "invalid http_path filter '(unclosed'"),
    (Req(blacklist=[FF(protocol=["quic"])]), "invalid protocol filter 'quic': unknown protocol"),
    (Req(whitelist=[FF(source_ip=["10.0.0.256"])]), "invalid source_ip filter '10.0.0.256'"),
    (Req(whitelist=[FF(source_label=["app in (a"])]), "invalid source_label filter"),
    (Req(field_mask=field_mask_pb2.FieldMask(paths=["nope"])), "field_mask nope names fields"),
])
def test_bad_requests_are_invalid_argument(hundred, request_, message):
    with pytest.raises(grpc.RpcError) as err:
        list(hundred.stub.GetFlows(request_, timeout=10))
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert message in err.value.details()
    with pytest.raises(grpc.RpcError) as err:
        list(hundred.batches.GetFlowBatches(request_, timeout=10))
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT


def test_unix_socket_serves_the_same_api(hundred):
    with grpc.insecure_channel(f"unix://{hundred.socket_path}") as channel:
        got = list(observer_pb2_grpc.ObserverStub(channel).GetFlows(Req(number=3), timeout=10))
    assert ports(got) == [97, 98, 99]


def test_version_header(hundred):
    call = hundred.stub.GetFlows(Req(number=1), timeout=10)
    list(call)
    assert dict(call.initial_metadata())["hubble-server-version"].endswith("+flowscope")
