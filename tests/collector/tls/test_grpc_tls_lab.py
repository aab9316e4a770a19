"""gRPC inside TLS: a grpcio client and server in two lab pods, on Debian's grpcio (gRPC core over the
system's OpenSSL, through memory BIOs: its socket I/O happens outside SSL_read/SSL_write). Every call
appears with its method and grpc-status, counts equal the client's, the fields equal the same client's
plaintext run. The PyPI grpcio links BoringSSL statically: that server is reported as not visible."""

from __future__ import annotations

import collections
import os
import time

import pytest

from collector.l7.httprecord import grpc_call, grpc_status
from collector.tls import NOT_VISIBLE
from lab.testbed.netns import REPO
from lab.testbed.wait import wait_for
from proto.flow import flow_pb2
from tests.collector.datapath.helpers import wait_listening
from tests.collector.tls.helpers import assert_same_fields, wait_count

pytestmark = pytest.mark.root

DEMO = str(REPO / "lab/apps/grpc_demo.py")
SYSTEM_PYTHON = "/usr/bin/python3"  # with Debian's python3-grpcio (deploy/local/setup.sh)
STATUS = {"OK": 0, "INVALID_ARGUMENT": 3, "NOT_FOUND": 5}
TLS_PORT, PLAIN_PORT = 50443, 50051
CALLS = 26  # grpc_demo.py client's plan


def topology(cert_dir: str, server_python: str) -> dict:
    demo = os.path.abspath(DEMO)
    return {
        "pods": [
            {"name": "caller", "namespace": "shop", "labels": {"app": "caller"}},
            {"name": "echo", "namespace": "shop", "labels": {"app": "echo"},
             "commands": [f"FLOWSCOPE_GRPC_TLS={cert_dir} exec {server_python} {demo} server {TLS_PORT}",
                          f"exec {server_python} {demo} server {PLAIN_PORT}"]},
        ],
    }


def client(lab, port: int, tls_dir: str = "") -> collections.Counter:
    env = ["env", f"FLOWSCOPE_GRPC_TLS={tls_dir}"] if tls_dir else []
    out = lab.exec("caller", [*env, SYSTEM_PYTHON, os.path.abspath(DEMO), "client", f"{lab.pod('echo').ipv4}:{port}"])
    assert out.returncode == 0, out.stderr
    return collections.Counter((method, STATUS[code]) for method, code in (line.split() for line in out.stdout.splitlines()))


def calls_seen(flows: list[flow_pb2.Flow]) -> collections.Counter:
    return collections.Counter(((grpc_call(f.l7.http) or ("", "?"))[1], grpc_status(f.l7.http))
                               for f in flows if f.l7.type == flow_pb2.RESPONSE)


@pytest.fixture
def cert_dir(tmp_path) -> str:
    import subprocess

    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=web",
                    "-addext", "subjectAltName=DNS:web", "-keyout", str(tmp_path / "key.pem"),
                    "-out", str(tmp_path / "cert.pem")], check=True, capture_output=True)
    return str(tmp_path)


def test_every_grpc_call_over_tls_is_seen_like_plaintext(lab_factory, collector_factory, cert_dir):
    assert os.path.exists(SYSTEM_PYTHON), f"{SYSTEM_PYTHON} missing (Debian's python3 with python3-grpcio)"
    lab = lab_factory(topology(cert_dir, SYSTEM_PYTHON))
    run = collector_factory(lab, l7_tls=True)
    assert run.collector.tls is not None, "TLS capture did not start (see the log)"
    wait_listening(lab, "echo", TLS_PORT)
    wait_listening(lab, "echo", PLAIN_PORT)
    time.sleep(1.5)  # the capture's next /proc scan attaches to the libssl the servers map

    mine = collections.Counter()
    for _ in range(3):  # three connections, each its own SSL objects and HPACK contexts
        mine += client(lab, TLS_PORT, cert_dir)
    assert sum(mine.values()) == 3 * CALLS
    tls = wait_count(run, TLS_PORT, True, 2 * 3 * CALLS)
    assert calls_seen(tls) == mine
    assert len(tls) == 2 * 3 * CALLS
    assert not any(f.l7_partial for f in tls)
    assert all(f.l7.latency_ns > 0 and f.source.pod_name == lab.pod("echo").name
               and "k8s:app=caller" in f.destination.labels for f in tls if f.l7.type == flow_pb2.RESPONSE)

    plain_calls = collections.Counter()
    for _ in range(3):
        plain_calls += client(lab, PLAIN_PORT)
    assert plain_calls == mine
    # The TC hook sees both copies of a retransmitted segment; the second makes no record (no method-less
    # "HTTP/2 0" response): the calls must match field by field, and nothing else be there.
    plain = wait_count(run, PLAIN_PORT, False, 2 * 3 * CALLS)
    assert all(f.l7.http.method for f in tls + plain)
    assert_same_fields(tls, TLS_PORT, plain, PLAIN_PORT)


def test_a_server_with_static_tls_is_reported_not_visible(lab_factory, collector_factory, cert_dir):
    """The venv's grpcio (PyPI) carries BoringSSL inside its extension module: no libssl to probe."""
    import sys

    lab = lab_factory(topology(cert_dir, sys.executable))
    run = collector_factory(lab, l7_tls=True)
    wait_listening(lab, "echo", TLS_PORT)
    wait_for(lambda: run.collector.tls.not_visible, 10, "a server reported as TLS not visible", interval=0.1)
    # two server processes (TLS and plaintext port) load the same module: each reported once
    assert run.collector.tls.not_visible == {NOT_VISIBLE: 2}
    time.sleep(1.5)  # later scans do not report them again
    assert run.collector.tls.not_visible == {NOT_VISIBLE: 2}
