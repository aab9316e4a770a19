"""`flowscope relay` and `flowscope observe` as users run them (subprocesses): merged output from two
collectors with filters, --follow, -o json; the relay restarted still answers `--since 1h` from storage;
bad requests and bad certificates give one-line errors."""

import json
import queue
import re
import subprocess
import sys
import threading
import time
import urllib.request

import pytest

from proto.flow import flow_pb2
from lab.testbed.wait import wait_for
from tests.fixtures.cli import ROOT, flowscope
from tests.relay.nodes import make_flow


def json_lines(text: str) -> list[dict]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


@pytest.mark.integration  # a chdb store in a subprocess
def test_observe_through_relay_merges_filters_and_survives_a_relay_restart(node_factory, relay_process, tmp_path):
    a, b = node_factory("node-a"), node_factory("node-b")
    t0 = time.time_ns() - 120_000_000_000
    a.publish(*[make_flow(t0 + i * 2_000_000_000, f"frontend-{i}", "backend-0", port=8080) for i in range(10)])
    b.publish(*[make_flow(t0 + i * 2_000_000_000 + 1_000_000_000, "backend-0", "db-0", namespace="data",
                          port=53, protocol="udp", verdict=flow_pb2.DROPPED) for i in range(10)])
    storage = f"chdb://{tmp_path}/db"
    peers = ["--peer", f"node-a={a.address}", "--peer", f"node-b={b.address}", "--storage", storage]
    relay = relay_process(*peers)

    def observe(*args: str) -> list[dict]:
        done = flowscope("observe", "--server", relay.server, "-o", "json", *args)
        assert done.returncode == 0, done.stderr
        return json_lines(done.stdout)

    wait_for(lambda: len(observe("--all")) == 20, timeout=20, what="20 flows through the relay")
    merged = observe("--last", "20")
    assert [m["node_name"] for m in merged] == ["node-a", "node-b"] * 10
    assert [m["time"] for m in merged] == sorted(m["time"] for m in merged)
    assert merged[0]["flow"]["source"]["pod_name"] == "frontend-0"
    assert merged[1]["flow"]["verdict"] == "DROPPED"

    assert len(observe("--last", "3")) == 3
    assert {m["node_name"] for m in observe("--verdict", "DROPPED")} == {"node-b"}
    assert {m["flow"]["destination"]["pod_name"] for m in observe("--not", "--protocol", "udp")} == {"backend-0"}
    assert [m["flow"]["source"]["pod_name"] for m in observe("--pod", "shop/frontend-3")] == ["frontend-3"]
    assert len(observe("--namespace", "data", "--all")) == 10
    assert len(observe("--node-name", "node-a", "--all")) == 10

    # --follow: new flows as they come, from both nodes, as JSON lines.
    follower = subprocess.Popen([sys.executable, "-m", "flowscope", "observe", "--server", relay.server, "-f",
                                 "-o", "json"], cwd=ROOT, stdout=subprocess.PIPE, text=True)
    lines: queue.Queue = queue.Queue()
    threading.Thread(target=lambda: [lines.put(json.loads(line)) for line in follower.stdout], daemon=True).start()
    try:
        # The follower is subscribed once a probe flow reaches it; flows before that are not followed.
        probes = 0

        def probe_seen() -> bool:
            nonlocal probes
            a.publish(make_flow(time.time_ns(), f"probe-{probes}", "backend-0"))
            probes += 1
            try:
                return "probe" in lines.get(timeout=0.5)["flow"]["source"]["pod_name"]
            except queue.Empty:
                return False

        wait_for(probe_seen, timeout=30, what="the follower to receive a probe flow")
        now = time.time_ns()
        a.publish(make_flow(now, "live-a", "backend-0"))
        b.publish(make_flow(now + 1_000_000, "live-b", "db-0"))
        live = []
        while len(live) < 2:
            line = lines.get(timeout=30)
            if "flow" in line and "probe" not in line["flow"]["source"]["pod_name"]:
                live.append(line)
    finally:
        follower.terminate()
        follower.wait(timeout=10)
    assert [(m["node_name"], m["flow"]["source"]["pod_name"]) for m in live] == [
        ("node-a", "live-a"), ("node-b", "live-b")]

    # Relay restarted, and the collectors too (empty rings): --since 1h comes from storage.
    relay.stop()
    a.kill()
    b.kill()
    node_factory("node-a").restart_at(a.port)
    node_factory("node-b").restart_at(b.port)
    relay = relay_process(*peers)
    history = [m for m in observe("--since", "1h") if "probe" not in m["flow"]["source"]["pod_name"]]
    assert len(history) == 22
    assert {m["flow"]["source"]["pod_name"] for m in history} >= {"frontend-0", "live-a", "live-b"}
    assert [m["time"] for m in history] == sorted(m["time"] for m in history)


def test_observe_reports_bad_requests_in_one_line_and_metrics_show_the_dead_node(relay_process):
    # flowscope observe checks some of these itself; the relay's own answers (INVALID_ARGUMENT with
    # the same messages) are tested with raw gRPC requests in test_requests.py.
    relay = relay_process("--peer", "nowhere=localhost:1", "--storage", "none", "--metrics-address", "127.0.0.1:0")
    metrics_port = re.search(r"metrics on port (\d+)", relay.started).group(1)
    with urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=10) as answer:
        text = answer.read().decode()
    assert re.search(r"^flowscope_unavailable_nodes 1\.0$", text, re.M), text
    assert re.search(r"^flowscope_ring_buffer_capacity 65536\.0$", text, re.M), text
    for args, message in ((("--http-path", "a[b"), "http_path"),
                          (("--since", "1m", "--until", "1h"), "is after until"),
                          (("--protocol", "carrier-pigeon"), "carrier-pigeon")):
        done = flowscope("observe", "--server", relay.server, *args)
        assert done.returncode == 1, done
        assert message in done.stderr, done.stderr
        assert len(done.stderr.strip().splitlines()) == 1


def test_relay_with_an_expired_certificate_says_which_and_why(test_pki):
    done = flowscope("relay", "--listen-address", "localhost:0", "--storage", "none", "--peer", "n=localhost:1",
                     "--tls-relay-server-cert-file", test_pki.expired_server.cert,
                     "--tls-relay-server-key-file", test_pki.expired_server.key)
    assert done.returncode == 1
    assert re.search(r"server certificate .*expired-server\.crt: certificate CN=relay\.flowscope\.test,O=flowscope "
                     r"expired on \d{4}-\d\d-\d\d", done.stderr), done.stderr
