"""Requests built to stall the server (issue #16): patterns that made Python's backtracking `re` spend
seconds per flow. The server answers them (or refuses them with INVALID_ARGUMENT) while another
client's flows keep arriving."""
import threading

import grpc
import pytest

from proto.flow import flow_pb2
from proto.observer import observer_pb2
from tests.common.filters.sample import http_flow
from tests.collector.observer.streams import reader, take, wait_for_followers

Req = observer_pb2.GetFlowsRequest
LONG_URL = "http://frontend.default.svc.cluster.local:8080/" + "a" * 200
LONG_NAME = "a" * 60 + ".example.org"


def _publish_until(observer, stop: threading.Event) -> None:
    port = 0
    while not stop.is_set():
        port = port % 60000 + 1
        observer.publish(http_flow(url=LONG_URL, sport=port, destination_names=[LONG_NAME]))
        stop.wait(0.001)


def test_hostile_patterns_do_not_stall_other_clients(serve):
    served = serve(capacity=4096)
    hostile = [served.stub.GetFlows(Req(follow=True, whitelist=[flow_pb2.FlowFilter(http_url=["(.|.|.)*!"])])),
               served.stub.GetFlows(Req(follow=True, whitelist=[flow_pb2.FlowFilter(
                   destination_fqdn=["**********z"])]))]
    hostile_queues = [reader(call) for call in hostile]
    wait_for_followers(served.observer, 2)
    bystander = served.stub.GetFlows(Req(follow=True))
    flows = reader(bystander)
    wait_for_followers(served.observer, 3)
    stop = threading.Event()
    publisher = threading.Thread(target=_publish_until, args=(served.observer, stop), daemon=True)
    publisher.start()
    try:
        got = take(flows, 500)  # each within streams.BOUND: the flows keep arriving
        assert all(r.flow.l7.http.url == LONG_URL for r in got)
        # a history query with the same patterns over the whole ring completes, with no match
        for field in (dict(http_url=["(.|.|.)*!"]), dict(destination_fqdn=["**********z"])):
            history = list(served.stub.GetFlows(Req(number=4096, whitelist=[flow_pb2.FlowFilter(**field)]),
                                                timeout=30))
            assert history == []
        got = take(flows, 100)
        assert len(got) == 100
    finally:
        stop.set()
        publisher.join()
        for call in hostile + [bystander]:
            call.cancel()
    for q in hostile_queues:  # the hostile followers matched nothing, and ended only when cancelled
        end = q.get(timeout=5)
        assert isinstance(end, grpc.RpcError) and end.code() == grpc.StatusCode.CANCELLED


@pytest.mark.parametrize("field, pattern", [
    ("http_url", "(?=x)y"),  # look-ahead: Python's re backtracks through it, RE2 refuses it
    ("http_path", r"(a+)\1"),
    ("dns_query", "x" * 2000),
    ("node_name", "node[0-9]"),
])
def test_unusable_patterns_are_invalid_argument_naming_the_pattern(serve, field, pattern):
    served = serve()
    with pytest.raises(grpc.RpcError) as err:
        list(served.stub.GetFlows(Req(number=10, whitelist=[flow_pb2.FlowFilter(**{field: [pattern]})]),
                                  timeout=10))
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert field in err.value.details() and repr(pattern[:20])[1:-1] in err.value.details()
