"""Health, ServerStatus, GetNodes, GetNamespaces, agent/debug events, hooks."""
import threading
import time

import grpc
import pytest
from google.protobuf import timestamp_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc

from collector.observer import HEALTH_SERVICE, Observer, ServerError, create_server
from proto.flow import flow_pb2
from proto.observer import observer_pb2
from proto.relay import relay_pb2
from tests.common.filters.sample import endpoint, make_flow


def test_health_answers_serving_for_hubble_observer(serve):
    served = serve()
    for channel in (served.channel, grpc.insecure_channel(f"unix://{served.socket_path}")):
        health = health_pb2_grpc.HealthStub(channel)
        reply = health.Check(health_pb2.HealthCheckRequest(service=HEALTH_SERVICE), timeout=5)
        assert reply.status == health_pb2.HealthCheckResponse.SERVING
    with pytest.raises(grpc.RpcError) as err:
        health.Check(health_pb2.HealthCheckRequest(service="no.such.Service"), timeout=5)
    assert err.value.code() == grpc.StatusCode.NOT_FOUND


def test_server_status_and_nodes(serve):
    served = serve(capacity=10)
    for i in range(25):
        served.observer.publish(make_flow(sport=i))
    status = served.stub.ServerStatus(observer_pb2.ServerStatusRequest(), timeout=5)
    assert (status.num_flows, status.max_flows, status.seen_flows) == (10, 10, 25)
    assert status.version.endswith("+flowscope") and status.uptime_ns > 0
    assert status.flows_rate == pytest.approx(25 / 60)
    nodes = served.stub.GetNodes(observer_pb2.GetNodesRequest(), timeout=5).nodes
    assert [(n.name, n.state, n.num_flows, n.seen_flows, n.max_flows) for n in nodes] == [
        ("node-1", relay_pb2.NODE_CONNECTED, 10, 25, 10)]
    assert nodes[0].address == "127.0.0.1:0" and not nodes[0].tls.enabled


def test_namespaces_seen_in_the_last_hour():
    now = [10**18]
    observer = Observer("n", clock=lambda: now[0])
    observer.publish(make_flow(src=endpoint("old"), dst=endpoint("")))
    now[0] += 3000 * 10**9
    observer.publish(make_flow(src=endpoint("shop"), dst=endpoint("default")))
    assert observer.namespaces() == [("", "default"), ("", "old"), ("", "shop")]
    now[0] += 700 * 10**9  # "old" was seen 3700 s ago
    assert observer.namespaces() == [("", "default"), ("", "shop")]


def test_get_namespaces_over_grpc(serve):
    served = serve()
    served.observer.publish(make_flow(dst=endpoint("shop", "db-0")))
    got = served.stub.GetNamespaces(observer_pb2.GetNamespacesRequest(), timeout=5).namespaces
    assert [(n.cluster, n.namespace) for n in got] == [("", "default"), ("", "shop")]


def test_agent_and_debug_events_are_empty_never_an_error(serve):
    served = serve()
    assert list(served.stub.GetAgentEvents(observer_pb2.GetAgentEventsRequest(number=10), timeout=5)) == []
    assert list(served.stub.GetDebugEvents(observer_pb2.GetDebugEventsRequest(number=10), timeout=5)) == []
    call = served.stub.GetAgentEvents(observer_pb2.GetAgentEventsRequest(follow=True))
    timer = threading.Timer(0.3, call.cancel)
    timer.start()
    start = time.monotonic()
    with pytest.raises(grpc.RpcError) as err:
        list(call)
    assert err.value.code() == grpc.StatusCode.CANCELLED and time.monotonic() - start >= 0.25


def test_failing_hook_is_counted_and_publish_goes_on(serve):
    served = serve()
    seen = []

    def broken(flow):
        raise RuntimeError("metrics bug")

    served.observer.hooks.extend([broken, seen.append])
    for i in range(3):
        served.observer.publish(make_flow(sport=i))
    assert served.observer.hook_errors == 3
    assert [f.l4.TCP.source_port for f in seen] == [0, 1, 2]
    assert len(list(served.stub.GetFlows(observer_pb2.GetFlowsRequest(number=10), timeout=5))) == 3


def test_publish_fills_uuid_node_and_time():
    observer = Observer("node-7", clock=lambda: 1_700_000_000_123_456_789)
    flows = [flow_pb2.Flow() for _ in range(3)]
    for f in flows:
        observer.publish(f)
    assert len({f.uuid for f in flows}) == 3 and all(len(f.uuid) == 36 for f in flows)
    assert {f.node_name for f in flows} == {"node-7"}
    assert flows[0].time.ToNanoseconds() == 1_700_000_000_123_456_789
    kept = make_flow(uuid="given", node_name="other")
    observer.publish(kept)
    assert (kept.uuid, kept.node_name) == ("given", "other")


def test_address_in_use_is_a_clear_error(serve):
    served = serve()
    with pytest.raises(ServerError, match=f"cannot listen on 127.0.0.1:{served.port}"):
        create_server(Observer("other"), f"127.0.0.1:{served.port}")


def test_agent_events_with_since_after_until_are_invalid(serve):
    served = serve()
    request = observer_pb2.GetAgentEventsRequest(since=timestamp_pb2.Timestamp(seconds=20),
                                                 until=timestamp_pb2.Timestamp(seconds=10))
    with pytest.raises(grpc.RpcError) as err:
        list(served.stub.GetAgentEvents(request, timeout=5))
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "is after until" in err.value.details()
