"""`flowscope status`, `list nodes|namespaces` and `watch peers`: Hubble's own test inputs rendered
byte for byte as Hubble's tests expect (golden/), then each command against a running collector and
relay, its output checked against the same formats."""

from __future__ import annotations

import json
import pathlib
import re
import subprocess
import sys
import time

import pytest
from google.protobuf import wrappers_pb2

from flowscope import hubble_format
from proto.observer import observer_pb2
from proto.peer import peer_pb2
from proto.relay import relay_pb2
from relay import Peer
from tests.fixtures.cli import ROOT, flowscope
from tests.relay.nodes import make_flow, wait_for

GOLDEN = pathlib.Path(__file__).parent / "golden"
NS = 1_000_000_000

# hubble/pkg/printer/printer_test.go TestPrinter_WriteServerStatusResponse
SS = observer_pb2.ServerStatusResponse(num_flows=2031, max_flows=4095, seen_flows=2348885, flows_rate=23.456,
                                       uptime_ns=301515181665, version="cilium v1.15.0+g4145278")
SSO = observer_pb2.ServerStatusResponse(num_flows=2031, max_flows=4095, seen_flows=2348885,
                                        uptime_ns=301515181665, version="cilium v1.10.3+g4145278")
SSN = observer_pb2.ServerStatusResponse(num_flows=2771, max_flows=8190, seen_flows=2771, flows_rate=23.456,
                                        uptime_ns=301515181665, version="hubble-relay v1.15.0+g4145278",
                                        num_connected_nodes=wrappers_pb2.UInt32Value(value=2),
                                        num_unavailable_nodes=wrappers_pb2.UInt32Value(value=0))
# hubble/cmd/list/node_test.go, namespace_test.go
NODES = [observer_pb2.Node(name="foo", version="1", state=relay_pb2.NODE_CONNECTED, uptime_ns=10**12,
                           num_flows=500, max_flows=1000, address="1.2.3.4",
                           tls=observer_pb2.TLS(enabled=True, server_name="foo.bar.tls")),
         observer_pb2.Node(name="bar", version="2", state=relay_pb2.NODE_UNAVAILABLE, address="5.6.7.8"),
         observer_pb2.Node(name="baz", version="3", state=relay_pb2.NODE_GONE),
         observer_pb2.Node(name="faz", version="4", state=relay_pb2.NODE_ERROR)]
NAMESPACES = [observer_pb2.Namespace(namespace=n, cluster=c) for n, c in
              (("foo", "cluster-1"), ("bar", "cluster-1"), ("baz", "cluster-2"), ("faz", "cluster-2"))]


def golden(name: str) -> str:
    return (GOLDEN / name).read_text()


@pytest.mark.parametrize("response, output, name", [
    (SS, "table", "status-table.txt"), (SSN, "table", "status-table-with-nodes.txt"),
    (SSO, "table", "status-table-without-flow-rate.txt"),
    (SS, "compact", "status-compact.txt"), (SSN, "compact", "status-compact-with-nodes.txt"),
    (SSO, "compact", "status-compact-without-flow-rate.txt"),
    (SS, "json", "status-json.txt"), (SSN, "json", "status-json-with-nodes.txt"),
    (SSO, "json", "status-json-without-flow-rate.txt"),
    (SS, "dict", "status-dict.txt"), (SSN, "dict", "status-dict-with-nodes.txt"),
    (SSO, "dict", "status-dict-without-flow-rate.txt"),
])
def test_status_formats_are_hubbles(response, output, name):
    assert hubble_format.server_status(response, output) == golden(name)


def test_status_lists_unavailable_nodes_sorted_and_counts_the_unnamed():
    res = observer_pb2.ServerStatusResponse(num_flows=1, max_flows=4, unavailable_nodes=["n3", "n1"],
                                            num_connected_nodes=wrappers_pb2.UInt32Value(value=1),
                                            num_unavailable_nodes=wrappers_pb2.UInt32Value(value=3))
    assert hubble_format.server_status(res, "compact").splitlines()[2:] == [
        "Connected Nodes: 1/4", "Unavailable Nodes: 3", "  - n1", "  - n3", "  - and 1 more..."]


def test_list_formats_are_hubbles():
    assert hubble_format.json_list(NODES) == golden("nodes-json.txt")
    assert hubble_format.node_table(NODES) == golden("nodes-table.txt")
    assert hubble_format.node_table(NODES, wide=True) == golden("nodes-wide.txt")
    assert hubble_format.node_table([observer_pb2.Node()]) == golden("nodes-table-empty.txt")
    assert hubble_format.node_table([observer_pb2.Node()], wide=True) == golden("nodes-wide-empty.txt")
    assert hubble_format.json_list([observer_pb2.Node()]) == "[\n  {}\n]\n"
    assert hubble_format.json_list(NAMESPACES) == golden("namespaces-json.txt")
    assert hubble_format.namespace_table(NAMESPACES) == golden("namespaces-table.txt")
    assert hubble_format.namespace_table(NAMESPACES, wide=True) == golden("namespaces-wide.txt")
    plain = [observer_pb2.Namespace(namespace=n.namespace) for n in NAMESPACES]
    assert hubble_format.namespace_table(plain, wide=True) == golden("namespaces-wide-no-cluster.txt")


def test_peer_lines_are_hubbles():
    changes = [peer_pb2.ChangeNotification(name="foo.bar", address="1.2.3.4", type=peer_pb2.PEER_ADDED,
                                           tls=peer_pb2.TLS(server_name="tls.foo.bar")),
               peer_pb2.ChangeNotification(name="foo.bar", address="1.2.3.4", type=peer_pb2.PEER_ADDED),
               peer_pb2.ChangeNotification()]
    assert "".join(hubble_format.peer_line(c) for c in changes) == golden("peers.txt")


@pytest.mark.parametrize("ns, text", [  # hubble/pkg/printer/formatter_test.go TestFormatDurationNS
    (0, "0s"), (1, "1ns"), (100, "100ns"), (1000, "1µs"), (100_000, "100µs"), (1_000_000, "1ms"),
    (100_000_000, "100ms"), (10**9, "1s"), (10 * 10**9, "10s"), (10**11, "1m40s"), (10**12, "16m40s"),
    (10**13, "2h46m40s"), (10**14, "27h46m40s"), (10**18, "277777h46m40s"),
    (2**63 - 1, "2562047h47m16.854775807s"), (2**63, "9223372036854775808ns"),
    (2**64 - 1, "18446744073709551615ns"), (1500, "1.5µs"), (3_600 * 10**9, "1h0m0s")])
def test_durations_read_as_go_writes_them(ns, text):
    assert hubble_format.go_duration(ns) == text


def test_grouping_as_hubble():
    assert [hubble_format.uint64_grouping(n) for n in (0, 100, 1000, 1_000_000, 2**64 - 1)] == [
        "0", "100", "1,000", "1,000,000", "18,446,744,073,709,551,615"]


# --- against running servers -------------------------------------------------------------------------

def matches(pattern_lines: list[str], text: str) -> None:
    """Each output line matches its pattern (regular expressions for what changes per run)."""
    lines = text.splitlines()
    assert len(lines) == len(pattern_lines), text
    for pattern, line in zip(pattern_lines, lines):
        assert re.fullmatch(pattern, line), f"{line!r} does not match {pattern!r}"


@pytest.fixture
def cluster(node_factory, relay_factory):
    """Two real collectors (Observer servers) with flows in shop and data, and a relay following both."""
    now = time.time_ns()
    a, b = node_factory("node-a"), node_factory("node-b")
    a.publish(*(make_flow(now - i * NS, "frontend-1", "backend-1") for i in range(3)))
    b.publish(make_flow(now, "backend-1", "database-0", namespace="data", port=6379))
    running = relay_factory()
    running.relay.add_peer(Peer(a.name, a.address))
    running.relay.add_peer(Peer(b.name, b.address))
    wait_for(lambda: all(n.info.state == relay_pb2.NODE_CONNECTED for n in running.relay.nodes())
             and len(running.relay.nodes()) == 2, what="the relay connected to both nodes")
    return a, b, running


def test_status_against_a_collector_and_a_relay(cluster):
    a, _b, relay = cluster
    out = flowscope("status", "--server", a.address)
    assert out.returncode == 0, out.stderr
    matches([re.escape(f"Healthcheck (via {a.address}): Ok"), re.escape("Current/Max Flows: 3/65,536 (0.00%)"),
             r"Flows/s: \d+\.\d\d"], out.stdout)
    out = flowscope("status", "--server", relay.address)
    assert out.returncode == 0, out.stderr
    matches([re.escape(f"Healthcheck (via {relay.address}): Ok"), r"Current/Max Flows: 4/[\d,]+ \(\d+\.\d\d%\)",
             r"Flows/s: \d+\.\d\d", re.escape("Connected Nodes: 2/2")], out.stdout)
    table = flowscope("status", "--server", relay.address, "-o", "table").stdout.splitlines()
    columns = re.split(r" {3,}", golden("status-table-with-nodes.txt").splitlines()[0])
    assert re.split(r" {3,}", table[0]) == columns
    cells = dict(zip(columns, re.split(r" {3,}", table[1])))
    assert cells["NUM FLOWS"] == "4" and cells["NUM CONNECTED NODES"] == "2" and cells["UPTIME"].endswith("s")
    assert cells["NUM UNAVAILABLE NODES"] == "0" and re.fullmatch(r"\d+\.\d\d|N/A", cells["FLOWS PER SECOND"])
    data = json.loads(flowscope("status", "--server", relay.address, "-o", "json").stdout)
    assert data["num_flows"] == "4" and data["num_connected_nodes"] == 2 and data["num_unavailable_nodes"] == 0
    assert list(data) == [k for k in json.loads(golden("status-json-with-nodes.txt")) if k in data]


def test_list_nodes_and_namespaces_against_servers(cluster):
    a, b, relay = cluster
    out = flowscope("list", "nodes", "--server", relay.address)
    assert out.returncode == 0, out.stderr
    # AGE and FLOWS/S are N/A until an uptime rounds to a whole second, as in hubble
    matches([r"NAME     STATUS      AGE +FLOWS/S   CURRENT/MAX-FLOWS",
             r"node-a   Connected   (\d+s|N/A) +(\d+\.\d\d|N/A) +3/65536 \(  0\.00%\)",
             r"node-b   Connected   (\d+s|N/A) +(\d+\.\d\d|N/A) +1/65536 \(  0\.00%\)"], out.stdout)
    wide = flowscope("list", "nodes", "--server", relay.address, "-o", "wide").stdout
    assert re.split(r" {3,}", wide.splitlines()[0])[-3:] == ["VERSION", "ADDRESS", "TLS"]
    assert f"{a.address}   N/A" in wide.splitlines()[1] and f"{b.address}   N/A" in wide.splitlines()[2]
    nodes = json.loads(flowscope("list", "nodes", "--server", relay.address, "-o", "json").stdout)
    assert [(n["name"], n["state"], n["num_flows"]) for n in nodes] == [
        ("node-a", "NODE_CONNECTED", "3"), ("node-b", "NODE_CONNECTED", "1")]
    assert list(nodes[0]) == [k for k in json.loads(golden("nodes-json.txt"))[0] if k in nodes[0]] + \
        [k for k in nodes[0] if k not in json.loads(golden("nodes-json.txt"))[0]]
    out = flowscope("list", "namespaces", "--server", a.address)
    assert out.returncode == 0 and out.stdout == "NAMESPACE\nshop\n", out.stdout + out.stderr
    listed = json.loads(flowscope("list", "namespaces", "--server", b.address, "-o", "json").stdout)
    assert [n["namespace"] for n in listed] == ["data"]


def test_watch_peers_against_a_relay(cluster, node_factory):
    _a, _b, relay = cluster
    proc = subprocess.Popen([sys.executable, "-m", "flowscope", "watch", "peers", "--server", relay.address],
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        first = [proc.stdout.readline() for _ in range(2)]
        c = node_factory("node-c")
        relay.relay.add_peer(Peer(c.name, c.address))
        added = proc.stdout.readline()
        relay.relay.remove_peer(c.name)
        removed = proc.stdout.readline()
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    assert sorted(first) == sorted(f"PEER_ADDED   {n.address} {n.name}\n" for n in cluster[:2])
    assert added == f"PEER_ADDED   {c.address} node-c\n"
    assert removed == f"PEER_DELETED {c.address} node-c\n"


def test_commands_report_an_unreachable_server_in_one_line():
    for args in (["status"], ["list", "nodes"], ["list", "namespaces"], ["watch", "peers"]):
        out = flowscope(*args, "--server", "localhost:1", "--timeout", "0.5")
        assert out.returncode == 1 and out.stderr.count("\n") == 1, out.stderr
        assert "cannot connect to localhost:1" in out.stderr
