"""Stream limits (issue #16): 200 follow clients against one collector Observer server. The excess are
refused with RESOURCE_EXHAUSTED naming the limit; health, ServerStatus and `flowscope observe --last 1`
still answer; the freed slots serve new clients."""
import os
import subprocess
import sys

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from collector.observer import HEALTH_SERVICE, Observer, create_server
from lab.testbed.wait import wait_for
from proto.observer import observer_pb2, observer_pb2_grpc
from tests.collector.observer.streams import BOUND, reader, wait_for_followers
from tests.common.filters.sample import make_flow

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(__file__))))
Req = observer_pb2.GetFlowsRequest
CLIENTS, LIMIT = 200, 64


@pytest.fixture
def server():
    observer = Observer("node-l")
    observer.publish(make_flow(sport=4242))
    srv, port = create_server(observer, "127.0.0.1:0", max_streams=LIMIT)
    channels = [grpc.insecure_channel(f"127.0.0.1:{port}") for _ in range(10)]
    yield observer, port, channels
    for channel in channels:
        channel.close()
    srv.stop(0).wait(5)


def _refused(queues) -> list[grpc.RpcError]:
    """The streams that ended with an error, once all the excess have been refused."""
    refused: dict[int, grpc.RpcError] = {}

    def all_excess_refused() -> bool:
        for i, q in enumerate(queues):
            if i not in refused and not q.empty():
                item = q.get()
                assert isinstance(item, grpc.RpcError), f"stream {i} got {item!r} before any flow was published"
                refused[i] = item
        return len(refused) >= CLIENTS - LIMIT

    wait_for(all_excess_refused, 4 * BOUND, f"{CLIENTS - LIMIT} streams refused", interval=0.02)
    return list(refused.values())


def test_excess_follow_clients_are_refused_and_the_server_still_answers(server):
    observer, port, channels = server
    calls = [observer_pb2_grpc.ObserverStub(channels[i % len(channels)]).GetFlows(Req(follow=True))
             for i in range(CLIENTS)]
    queues = [reader(call) for call in calls]
    try:
        wait_for_followers(observer, LIMIT)
        refused = _refused(queues)
        assert len(refused) == CLIENTS - LIMIT and observer.followers == LIMIT
        assert {err.code() for err in refused} == {grpc.StatusCode.RESOURCE_EXHAUSTED}
        assert "at most 64 (set by --max-flow-streams)" in refused[0].details()

        health = health_pb2_grpc.HealthStub(channels[0])
        reply = health.Check(health_pb2.HealthCheckRequest(service=HEALTH_SERVICE), timeout=BOUND)
        assert reply.status == health_pb2.HealthCheckResponse.SERVING
        status = observer_pb2_grpc.ObserverStub(channels[1]).ServerStatus(observer_pb2.ServerStatusRequest(),
                                                                         timeout=BOUND)
        assert status.num_flows == 1
        out = subprocess.run([sys.executable, "-m", "flowscope", "observe", "--server", f"127.0.0.1:{port}",
                              "--last", "1", "-o", "compact"], capture_output=True, text=True, timeout=60,
                             cwd=ROOT)
        assert out.returncode == 0, out.stderr
        assert ":4242" in out.stdout

        # the admitted followers get the flows
        observer.publish(make_flow(sport=4343))
        admitted = [q for q, call in zip(queues, calls) if not call.done()]
        assert len(admitted) == LIMIT
        assert all(q.get(timeout=BOUND).flow.l4.TCP.source_port == 4343 for q in admitted[:5])
    finally:
        for call in calls:
            call.cancel()
    # once they are gone, their slots serve new followers
    wait_for(lambda: not observer.followers, BOUND, "the cancelled followers gone", interval=0.02)
    late = observer_pb2_grpc.ObserverStub(channels[2]).GetFlows(Req(follow=True))
    q = reader(late)
    wait_for_followers(observer, 1)
    observer.publish(make_flow(sport=4444))
    assert q.get(timeout=BOUND).flow.l4.TCP.source_port == 4444
    late.cancel()


def test_history_queries_have_their_own_slots(server):
    observer, port, channels = server
    stub = observer_pb2_grpc.ObserverStub(channels[0])
    followers = [stub.GetFlows(Req(follow=True)) for _ in range(LIMIT)]
    try:
        wait_for_followers(observer, LIMIT)
        got = list(stub.GetFlows(Req(number=1), timeout=BOUND))
        assert [r.flow.l4.TCP.source_port for r in got] == [4242]
        with pytest.raises(grpc.RpcError) as err:
            next(iter(stub.GetFlows(Req(follow=True), timeout=BOUND)))
        assert err.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED and "follow streams" in err.value.details()
    finally:
        for call in followers:
            call.cancel()
