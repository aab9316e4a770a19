"""Real traffic, real datapath (root): two collectors serving disjoint sets of lab pods (two "nodes")
-> relay -> one merged stream with both node names; and `flowscope up` end to end in one process, also
over mutual TLS."""

import json
import re
import signal
import subprocess
import sys
import threading
import urllib.error
import urllib.request

import pytest

from proto.observer import observer_pb2
from relay import Peer
from tests.collector.datapath.helpers import curl, wait_listening
from tests.common.tls_matrix import assert_refuses_bad_clients, assert_rotation_is_used, read_flows, served_files
from tests.fixtures.datapath import unique_pin_dir
from tests.fixtures.relay import make_pki
from lab.testbed.wait import wait_for
from tests.fixtures.cli import ROOT, flowscope
from tests.relay.nodes import stub

pytestmark = pytest.mark.root

SERVER = "exec $FLOWSCOPE_PYTHON -m http.server 8080 --directory /usr/share/doc"
TWO_NODES = {
    "nodes": ["node-a", "node-b"],
    "namespaces": {"shop": {}, "data": {}},
    "pods": [
        {"name": "client", "namespace": "shop", "kind": "Deployment", "labels": {"app": "client"}, "node": "node-a"},
        {"name": "server", "namespace": "data", "kind": "Deployment", "labels": {"app": "server"}, "node": "node-b",
         "commands": [SERVER]},
    ],
}


def test_two_collectors_on_disjoint_pods_merge_into_one_stream(lab_factory, collector_factory, relay_factory):
    lab = lab_factory(TWO_NODES)
    node_a = collector_factory(lab, node_name="node-a")
    node_b = collector_factory(lab, node_name="node-b")
    running = relay_factory()
    for name, run in (("node-a", node_a), ("node-b", node_b)):
        running.relay.add_peer(Peer(name, f"127.0.0.1:{run.collector.grpc_port}"))
    wait_for(lambda: running.relay.status().num_connected_nodes.value == 2, what="both collectors")
    wait_listening(lab, "server", 8080)
    client, server = lab.pod("client"), lab.pod("server")
    port = curl(lab, "client", f"http://{server.ipv4}:8080/")

    def connection():
        everything = stub(running.address).GetFlows(observer_pb2.GetFlowsRequest(number=2**64 - 1), timeout=10)
        return [r for r in everything if r.HasField("flow") and port in (r.flow.l4.TCP.source_port,
                                                                         r.flow.l4.TCP.destination_port)]

    wait_for(lambda: {r.node_name for r in connection()} == {"node-a", "node-b"}, timeout=20,
             what="the connection seen by both nodes")
    flows = connection()
    times = [r.flow.time.ToNanoseconds() for r in flows]
    assert times == sorted(times)
    # Each node reports the connection at its own pod's device, with both ends' pods named.
    for r in flows:
        assert r.flow.node_name == r.node_name
        assert r.flow.interface.name == (client.device if r.node_name == "node-a" else server.device)
        ends = {r.flow.source.pod_name, r.flow.destination.pod_name}
        assert ends == {client.name, server.name}


def start_up(lab, tmp_path, pin_dir: str, *flags: str) -> tuple[subprocess.Popen, list[str]]:
    """`flowscope up` on the lab, everything on ephemeral loopback ports (`flags` override); returns
    the process and its log, whose last line is the "flowscope up:" one once it started."""
    up = subprocess.Popen(
        [sys.executable, "-m", "flowscope", "up", "--lab-state", lab.state_path, "--storage", f"chdb://{tmp_path}/db",
         "--collector-address", "127.0.0.1:0", "--listen-address", "localhost:0", "--metrics-address", "",
         "--http-api-address", "127.0.0.1:0", "--ui-address", "127.0.0.1:0", "--unix-socket", "",
         "--pin-dir", pin_dir, "--identity-state", str(tmp_path / "identities.json"), *flags],
        cwd=ROOT, stderr=subprocess.PIPE, text=True)
    log: list[str] = []
    for line in up.stderr:
        log.append(line)
        if "flowscope up:" in line or up.poll() is not None:
            break
    threading.Thread(target=lambda: log.extend(up.stderr), daemon=True).start()
    return up, log


def stop_up(up: subprocess.Popen, log: list[str], pin_dir: str) -> None:
    """SIGTERM, as a supervisor stops it; killed if still running after 60 s (a test must never leave a
    collector behind: its probes on the machine's libssl made the next TLS test's attach fail)."""
    up.send_signal(signal.SIGTERM)
    try:
        code = up.wait(timeout=60)
    except subprocess.TimeoutExpired:
        up.kill()
        up.wait()
        raise AssertionError("flowscope up still running 60 s after SIGTERM:\n" + "".join(log)) from None
    finally:
        subprocess.run(["rm", "-rf", pin_dir])
    assert code == 0, "".join(log)


def test_flowscope_up_runs_collector_relay_storage_http_api_and_ui(lab_factory, tmp_path):
    lab = lab_factory({"namespaces": {"shop": {}}, "pods": [
        {"name": "client", "namespace": "shop", "labels": {"app": "client"}},
        {"name": "server", "namespace": "shop", "labels": {"app": "server"}, "commands": [SERVER]}]})
    pin_dir = unique_pin_dir()
    up, log = start_up(lab, tmp_path, pin_dir)
    try:
        started = re.search(r"relay Observer API on port (\d+).*HTTP API on port (\d+), UI (http://\S+)", log[-1])
        assert started, "".join(log)
        relay, http_api, ui = f"localhost:{started.group(1)}", int(started.group(2)), started.group(3)
        wait_listening(lab, "server", 8080)
        port = curl(lab, "client", f"http://{lab.pod('server').ipv4}:8080/")

        def observed() -> list[dict]:
            done = flowscope("observe", "--server", relay, "--all", "--port", str(port), "-o", "json")
            assert done.returncode == 0, done.stderr
            return [json.loads(line) for line in done.stdout.splitlines()]

        wait_for(lambda: len(observed()) >= 2, timeout=20, what="the curl connection through `flowscope up`")
        flow = observed()[0]["flow"]
        assert {flow["source"]["pod_name"], flow["destination"]["pod_name"]} == {"client", "server"}

        def stored() -> list[dict]:
            url = f"http://127.0.0.1:{http_api}/api/v1/flows?since=1h&limit=1000&format=hubble"
            try:
                with urllib.request.urlopen(url, timeout=10) as answer:
                    return [f for f in json.load(answer) if str(port) in json.dumps(f)]
            except urllib.error.HTTPError as err:
                raise AssertionError(f"{url}: HTTP {err.code} {err.read()!r}") from None

        wait_for(lambda: len(stored()) >= 2, timeout=20, what="the connection in storage (HTTP API)")
        with urllib.request.urlopen(ui, timeout=30) as page:
            assert page.status == 200 and b"flowscope" in page.read()
    finally:
        stop_up(up, log, pin_dir)


def test_flowscope_up_over_mutual_tls_on_both_listeners(lab_factory, test_pki, tmp_path):
    """Both Observer APIs of `flowscope up` beyond loopback with mutual TLS: the relay follows its own
    collector over the unix socket; a client with the CA and a certificate reads flows from either,
    every bad client is refused in one line, and the relay's certificates rotate without a restart."""
    lab = lab_factory({"namespaces": {"shop": {}}, "pods": [
        {"name": "client", "namespace": "shop", "labels": {"app": "client"}},
        {"name": "server", "namespace": "shop", "labels": {"app": "server"}, "commands": [SERVER]}]})
    pin_dir = unique_pin_dir()
    served = served_files(tmp_path / "tls", test_pki)
    up, log = start_up(lab, tmp_path, pin_dir, "--collector-address", "0.0.0.0:0", "--listen-address", "0.0.0.0:0",
                       "--unix-socket", str(tmp_path / "hubble.sock"), "--tls-cert-file", served.cert,
                       "--tls-key-file", served.key, "--tls-client-ca-files", served.client_ca)
    try:
        started = re.search(r"collector on port (\d+), relay Observer API on port (\d+) \(mutual TLS\)", log[-1])
        assert started, "".join(log)
        collector, relay = (f"localhost:{started.group(i)}" for i in (1, 2))
        wait_listening(lab, "server", 8080)
        port = curl(lab, "client", f"http://{lab.pod('server').ipv4}:8080/")
        for address in (collector, relay):
            wait_for(lambda: any(f'"destination_port":{port}' in line or f'"source_port":{port}' in line
                                 for line in read_flows(address, test_pki, "relay.flowscope.test")),
                     timeout=20, what=f"the curl connection from {address} over mutual TLS")
            assert_refuses_bad_clients(address, test_pki, "relay.flowscope.test")
        assert_rotation_is_used(relay, served, test_pki, make_pki(tmp_path / "next"), "relay.flowscope.test")
    finally:
        stop_up(up, log, pin_dir)
