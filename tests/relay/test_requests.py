"""Bad GetFlows requests are refused with INVALID_ARGUMENT and a message saying what is wrong."""

import re

import grpc
import pytest
from google.protobuf import timestamp_pb2

from proto.flow import flow_pb2
from proto.observer import observer_pb2, observer_pb2_grpc


def ts(seconds: int) -> timestamp_pb2.Timestamp:
    return timestamp_pb2.Timestamp(seconds=seconds)


BAD_REQUESTS = [
    (observer_pb2.GetFlowsRequest(whitelist=[flow_pb2.FlowFilter(dns_query=["(unclosed"])]),
     "dns_query"),
    (observer_pb2.GetFlowsRequest(whitelist=[flow_pb2.FlowFilter(http_path=["a[b"])]), "http_path"),
    (observer_pb2.GetFlowsRequest(since=ts(2_000_000_000), until=ts(1_000_000_000)), "since .* is after until"),
    (observer_pb2.GetFlowsRequest(blacklist=[flow_pb2.FlowFilter(protocol=["carrier-pigeon"])]),
     "carrier-pigeon"),
    (observer_pb2.GetFlowsRequest(number=2**63), r"number 9223372036854775808 is too large"),
    (observer_pb2.GetFlowsRequest(whitelist=[flow_pb2.FlowFilter(source_ip=["10.0.0.300"])]), "10.0.0.300"),
]


@pytest.mark.parametrize("request_, message", BAD_REQUESTS, ids=lambda v: str(v)[:30])
def test_bad_request_is_invalid_argument_with_message(relay_factory, request_, message):
    running = relay_factory()
    with grpc.insecure_channel(running.address) as channel:
        with pytest.raises(grpc.RpcError) as err:
            list(observer_pb2_grpc.ObserverStub(channel).GetFlows(request_, timeout=5))
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert re.search(message, err.value.details()), err.value.details()


def test_all_is_accepted_and_events_rpcs_answer_empty(relay_factory):
    running = relay_factory()
    with grpc.insecure_channel(running.address) as channel:
        stub = observer_pb2_grpc.ObserverStub(channel)
        assert list(stub.GetFlows(observer_pb2.GetFlowsRequest(number=2**64 - 1), timeout=5)) == []
        assert list(stub.GetAgentEvents(observer_pb2.GetAgentEventsRequest(number=10), timeout=5)) == []
        assert list(stub.GetDebugEvents(observer_pb2.GetDebugEventsRequest(number=10), timeout=5)) == []
        assert stub.GetNamespaces(observer_pb2.GetNamespacesRequest(), timeout=5).namespaces == []


def test_follow_streams_past_the_limit_are_resource_exhausted(relay_factory):
    """Followers hold no thread in the relay, but memory and fan-out work: bounded like a node's."""
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    running = relay_factory(max_streams=3)
    with grpc.insecure_channel(running.address) as channel:
        stub = observer_pb2_grpc.ObserverStub(channel)
        followers = [stub.GetFlows(observer_pb2.GetFlowsRequest(follow=True)) for _ in range(3)]
        try:
            for call in followers:  # admitted: the relay sends its nodes' status first, or nothing yet
                assert call.initial_metadata() is not None
            with pytest.raises(grpc.RpcError) as err:
                list(stub.GetFlows(observer_pb2.GetFlowsRequest(follow=True), timeout=5))
            assert err.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
            assert "at most 3 (set by --max-flow-streams)" in err.value.details()
            assert list(stub.GetFlows(observer_pb2.GetFlowsRequest(number=1), timeout=5)) == []
            health = health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(service="hubble.server.Observer"), timeout=5)
            assert health.status == health_pb2.HealthCheckResponse.SERVING
        finally:
            for call in followers:
                call.cancel()
