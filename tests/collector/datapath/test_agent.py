"""The collector as users run it (`flowscope collector` in its own process: gRPC on a unix socket, health,
metrics, clean exit that detaches) and following pods that come and go."""

from __future__ import annotations

import signal
import socket
import subprocess
import urllib.request

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from common.endpoints import EndpointCache
from lab.testbed.wait import wait_for
from proto.observer import observer_pb2, observer_pb2_grpc
from tests.collector.datapath.helpers import TOPOLOGY, curl, of_connection, wait_listening
from tests.collector.datapath.test_robustness import collector_cmd, filter_ids
from tests.fixtures.datapath import unique_pin_dir

pytestmark = pytest.mark.root


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_flowscope_collector_serves_flows_health_and_metrics(lab_factory, tmp_path):
    lab = lab_factory(TOPOLOGY)
    server = lab.pod("server")
    wait_listening(lab, "server", 8080)
    sock, metrics_port = tmp_path / "hubble.sock", free_port()
    cmd = collector_cmd(unique_pin_dir(), lab)
    cmd[cmd.index("--unix-socket") + 1] = str(sock)
    proc = subprocess.Popen(cmd + ["--metrics-address", f"127.0.0.1:{metrics_port}"], stderr=subprocess.PIPE,
                            text=True)
    try:

        def serving() -> bool:
            assert proc.poll() is None, proc.stderr.read()
            return sock.exists() and len(filter_ids(server.device)) == 2

        wait_for(serving, 30, "the collector's socket and its two filters on the pod device", interval=0.1)
        port = curl(lab, "client", f"http://{server.ipv4}:8080/")
        with grpc.insecure_channel(f"unix://{sock}") as channel:
            health = health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(service="hubble.server.Observer"), timeout=10)
            assert health.status == health_pb2.HealthCheckResponse.SERVING
            stub = observer_pb2_grpc.ObserverStub(channel)

            def connection_flows() -> list:
                got = [r.flow for r in stub.GetFlows(observer_pb2.GetFlowsRequest(number=1000), timeout=10)
                       if r.HasField("flow") and of_connection(port)(r.flow)]
                return got if len(got) >= 8 else []

            flows = wait_for(connection_flows, 30, "8 flows of the connection over the socket", interval=0.2)
        assert {f.destination.pod_name for f in flows} >= {server.name}
        metrics = urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=10).read().decode()
        assert "hubble_flows_processed_total" in metrics
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    assert filter_ids(server.device) == [], "a clean exit detaches"


def test_follows_pods_that_come_and_go(lab_factory, collector_factory):
    lab = lab_factory(TOPOLOGY)
    client, server = (next(e for e in lab.endpoints() if e.pod_name == lab.pod(n).name) for n in ("client", "server"))
    cache = EndpointCache(client.node_name)
    cache.replace([client])
    run = collector_factory(lab, endpoints=cache)
    wait_listening(lab, "server", 8080)
    assert set(run.collector.datapath.attached) == {client.ifindex}

    cache.upsert(server)
    wait_for(lambda: server.ifindex in run.collector.datapath.attached, 5, "the new pod's device attached",
             interval=0.05)
    port = curl(lab, "client", f"http://{server.ips[0]}:8080/")
    flows = run.wait_for(of_connection(port), count=8)
    assert {f.interface.name for f in flows} == {client.device, server.device}
    assert all(f.destination.pod_name == server.pod_name for f in flows if not f.is_reply.value)

    cache.delete(server.namespace, server.pod_name)
    wait_for(lambda: server.ifindex not in run.collector.datapath.attached, 5, "the deleted pod's device detached",
             interval=0.05)
    assert filter_ids(server.device) == []
