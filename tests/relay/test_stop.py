"""`flowscope relay` and `flowscope up --no-collector` stop within 5 s of SIGINT or SIGTERM whatever their
clients do (following, reading history slowly, going away mid-stream), and clients going away are
debug lines, never ERROR tracebacks (issue #16)."""

import signal
import time

import grpc
import pytest

from proto.observer import observer_pb2, observer_pb2_grpc
from tests.fixtures.stopping import empty_lab, free_port, start_command, stop_and_check
from lab.testbed.wait import wait_for
from tests.relay.nodes import make_flow

Req = observer_pb2.GetFlowsRequest
SIGNALS = pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])


def busy_clients(port: int, with_flows: bool = True) -> tuple[list, list[grpc.Channel]]:
    """Followers and (when the server has flows) a history reader that never reads and a client that
    leaves mid-stream."""
    channels = [grpc.insecure_channel(f"127.0.0.1:{port}") for _ in range(3)]
    stub = observer_pb2_grpc.ObserverStub(channels[0])
    calls = [stub.GetFlows(Req(follow=True)) for _ in range(5)]
    if with_flows:
        wait_for(lambda: len(list(stub.GetFlows(Req(number=5), timeout=5))) == 5, timeout=30,
                 what="flows through the server")
        calls.append(observer_pb2_grpc.ObserverStub(channels[1]).GetFlows(Req(number=20000, follow=True)))
        leaving = observer_pb2_grpc.ObserverStub(channels[2]).GetFlows(Req(number=20000))
        next(iter(leaving))
        channels[2].close()  # gone after one flow, like `observe | head -1`
    for call in calls[:5]:
        assert call.initial_metadata() is not None  # admitted and streaming
    time.sleep(1)  # let the server notice the client that left
    return calls, channels


def close(calls, channels) -> None:
    for call in calls:
        call.cancel()
    for channel in channels:
        channel.close()


@SIGNALS
def test_relay_stops_promptly_whatever_its_clients_do(node_factory, sig):
    node = node_factory("node-s")
    t0 = time.time_ns() - 60_000_000_000
    node.publish(*[make_flow(t0 + i * 1000, f"frontend-{i % 7}", "backend-0") for i in range(20000)])
    port = free_port()
    proc, log = start_command(["relay", "--listen-address", f"127.0.0.1:{port}", "--storage", "none",
                               "--peer", f"node-s={node.address}"], port)
    calls, channels = busy_clients(port)
    try:
        stop_and_check(proc, log, sig)
    finally:
        close(calls, channels)


@pytest.mark.integration  # the embedded ClickHouse (chdb) in the `up` process
@SIGNALS
def test_up_without_collector_stops_promptly(tmp_path, sig):
    """`up --no-collector`: relay, embedded store, JSON API and UI in one process."""
    port = free_port()
    proc, log = start_command(["up", "--no-collector", "--storage", f"chdb://{tmp_path}/db",
                               "--listen-address", f"127.0.0.1:{port}", "--metrics-address", "",
                               "--http-api-address", f"127.0.0.1:{free_port()}",
                               "--ui-address", f"127.0.0.1:{free_port()}", "--unix-socket", "",
                               "--lab-state", empty_lab(tmp_path)], port)
    calls, channels = busy_clients(port, with_flows=False)
    try:
        stop_and_check(proc, log, sig)
    finally:
        close(calls, channels)
