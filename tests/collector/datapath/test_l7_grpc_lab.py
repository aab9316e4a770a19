"""gRPC through the real datapath: a grpcio client and server in two lab pods, every call seen with its
service, method and grpc-status, counts equal the client's. Unlike the capture tests (a pcap replayed in
order), segments here reach the parser from per-CPU perf buffers, so ordering is under test too."""

from __future__ import annotations

import collections
import os
import sys

import pytest

from collector.l7.httprecord import grpc_call, grpc_status
from lab.testbed.netns import REPO
from lab.testbed.wait import wait_for
from proto.flow import flow_pb2
from tests.collector.datapath.helpers import wait_listening

pytestmark = pytest.mark.root

PORT = 50051
DEMO = str(REPO / "lab/apps/grpc_demo.py")
STATUS = {"OK": 0, "INVALID_ARGUMENT": 3, "NOT_FOUND": 5}
TOPOLOGY = {
    "pods": [
        {"name": "caller", "namespace": "shop", "labels": {"app": "caller"}},
        {"name": "echo", "namespace": "shop", "labels": {"app": "echo"},
         "commands": [f"exec $FLOWSCOPE_PYTHON {os.path.abspath(DEMO)} server {PORT}"]},
    ],
}


def test_every_grpc_call_is_seen_with_its_status(lab_factory, collector_factory):
    lab = lab_factory(TOPOLOGY)
    run = collector_factory(lab)
    wait_listening(lab, "echo", PORT)
    client = collections.Counter()
    for _ in range(3):  # several connections, each a fresh HPACK context
        out = lab.exec("caller", [sys.executable, os.path.abspath(DEMO), "client",
                                  f"{lab.pod('echo').ipv4}:{PORT}"])
        assert out.returncode == 0, out.stderr
        out = out.stdout
        client.update((method, STATUS[code]) for method, code in (line.split() for line in out.splitlines()))
    assert sum(client.values()) == 78

    def responses():
        return [f for f in run.snapshot(lambda f: f.Type == flow_pb2.L7 and f.l7.type == flow_pb2.RESPONSE)
                if f.l7.http.protocol == "HTTP/2" and f.destination.pod_name == lab.pod("caller").name]
    wait_for(lambda: len(responses()) >= 78, 15, "78 HTTP/2 responses to the caller", interval=0.1)
    seen = collections.Counter(((grpc_call(f.l7.http) or ("", "?"))[1], grpc_status(f.l7.http)) for f in responses())
    assert seen == client
    assert not any(f.l7_partial for f in responses())
    assert all(f.source.pod_name == lab.pod("echo").name and f.l7.latency_ns > 0 for f in responses())
