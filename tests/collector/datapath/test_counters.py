"""Counters and aggregation checked against tcpdump on the same device."""

from __future__ import annotations

import time

import pytest

from proto.flow import flow_pb2
from tests.collector.datapath.helpers import TOPOLOGY, Capture, curl, of_connection, wait_listening

pytestmark = pytest.mark.root


def directions(packets, client_ip: str, client_port: int):
    forward = [p for p in packets if (p[0], p[1]) == (client_ip, client_port)]
    reverse = [p for p in packets if (p[2], p[3]) == (client_ip, client_port)]
    return forward, reverse


def test_finished_connection_counts_equal_capture(lab_factory, collector_factory, tmp_path):
    lab = lab_factory(TOPOLOGY)
    run = collector_factory(lab, aggregation="medium")
    wait_listening(lab, "server", 8080)
    server, client = lab.pod("server"), lab.pod("client")
    capture = Capture(server.device, str(tmp_path / "server.pcap"))
    port = curl(lab, "client", f"http://{server.ipv4}:8080/bash")  # ~1 MB: large (GSO) segments too
    ended = run.wait_for(lambda f: of_connection(port)(f) and f.interface.name == server.device
                         and "closed" in f.Summary)
    packets = capture.stop()
    forward, reverse = directions(packets, client.ipv4, port)
    assert len(ended) == 1, "one end-of-connection flow per device"
    counters = ended[0].counters
    assert (counters.packets_forward, counters.bytes_forward) == (len(forward), sum(p[4] for p in forward))
    assert (counters.packets_reverse, counters.bytes_reverse) == (len(reverse), sum(p[4] for p in reverse))
    assert counters.bytes_reverse > 1_000_000 and counters.duration_ns > 0

    # aggregation medium: a handful of L3/L4 flows per device for this short connection
    at_server = run.snapshot(lambda f: of_connection(port)(f) and f.interface.name == server.device)
    assert 3 <= len(at_server) <= 6 < len(packets), [f.Summary for f in at_server]
    assert [f.Summary for f in at_server[:2]] == ["TCP Flags: SYN", "TCP Flags: SYN, ACK"]


def test_aggregation_none_gives_one_flow_per_packet(lab_factory, collector_factory, tmp_path):
    lab = lab_factory(TOPOLOGY)
    run = collector_factory(lab, aggregation="none")
    wait_listening(lab, "server", 8080)
    server, client = lab.pod("server"), lab.pod("client")
    capture = Capture(client.device, str(tmp_path / "client.pcap"))
    port = curl(lab, "client", f"http://{server.ipv4}:8080/")
    packets = capture.stop()
    forward, reverse = directions(packets, client.ipv4, port)
    flows = run.wait_for(lambda f: of_connection(port)(f) and f.interface.name == client.device,
                         count=len(packets))
    assert len(flows) == len(forward) + len(reverse) == len(packets)
    assert sum(1 for f in flows if f.is_reply.value) == len(reverse)
    last = flows[-1].counters
    assert last.packets_forward + last.packets_reverse == len(packets)
    assert all(f.Type == flow_pb2.L3_L4 for f in flows)


def test_long_lived_connection_gets_periodic_updates(lab_factory, collector_factory):
    lab = lab_factory(TOPOLOGY)
    run = collector_factory(lab, aggregation="medium", update_interval_s=0.5)
    server = lab.pod("server")
    wait_listening(lab, "server", 5353, udp=True)
    lab.exec("client", ["python3", "-c", "import socket,sys,time; s=socket.socket(socket.AF_INET, socket.SOCK_DGRAM);"
                        "s.settimeout(5); s.bind(('', 41000))\nfor _ in range(25):\n s.sendto(b'x', (sys.argv[1], 5353));"
                        " s.recvfrom(10); time.sleep(0.1)", server.ipv4], check=True)
    flows = run.wait_for(lambda f: f.l4.UDP.source_port == 41000 and f.interface.name == server.device, count=4)
    assert 4 <= len(flows) <= 10, "start + updates about every 0.5 s over 2.5 s, not one per packet (25)"
    forward = [f.counters.packets_forward for f in flows]
    assert forward == sorted(forward) and forward[-1] >= 15


def test_aggregation_max_gives_start_and_end_only(lab_factory, collector_factory):
    lab = lab_factory(TOPOLOGY)
    run = collector_factory(lab, aggregation="max")
    wait_listening(lab, "server", 8080)
    server = lab.pod("server")
    port = curl(lab, "client", f"http://{server.ipv4}:8080/")
    at_server = lambda f: of_connection(port)(f) and f.interface.name == server.device  # noqa: E731
    assert run.wait_for(lambda f: at_server(f) and "closed" in f.Summary)
    time.sleep(0.5)
    start, end = run.snapshot(at_server)
    assert start.Summary == "TCP Flags: SYN" and end.Summary.endswith("(connection closed)")
    assert end.l4.TCP.flags.FIN and end.counters.packets_reverse > 0


# ~1 MB, then a directory listing (counters that cannot be mistaken for each other), from one client port.
# HTTP/1.0: the server closes first and the client reads to the end before closing, so the client's
# port is free again at once (a client that closed first would hold it in TIME_WAIT; curl may).
TWO_ON_ONE_PORT = """
import socket, sys
for path in ("/bash", "/"):
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("", int(sys.argv[2])))
    s.connect((sys.argv[1], 8080))
    s.sendall(b"GET " + path.encode() + b" HTTP/1.0\\r\\n\\r\\n")
    while s.recv(65536):
        pass
    s.close()
"""


def test_reused_client_port_gives_each_connection_its_own_end(lab_factory, collector_factory, tmp_path):
    """Two connections in a row from one client port, the first still in the table (closed, within its
    close grace) when the second's SYN comes: the kernel ends the first, the second starts anew."""
    lab = lab_factory(TOPOLOGY)
    run = collector_factory(lab, aggregation="medium", close_grace_s=3.0)
    wait_listening(lab, "server", 8080)
    server, client = lab.pod("server"), lab.pod("client")
    capture = Capture(server.device, str(tmp_path / "server.pcap"))
    port = 41234
    lab.exec("client", ["python3", "-c", TWO_ON_ONE_PORT, server.ipv4, str(port)], check=True)
    at_server = lambda f: of_connection(port)(f) and f.interface.name == server.device  # noqa: E731
    ended = run.wait_for(lambda f: at_server(f) and "closed" in f.Summary, count=2)
    packets = capture.stop()
    syns = [i for i, p in enumerate(packets) if (p[0], p[1]) == (client.ipv4, port) and p[5] == "S"]
    assert len(syns) == 2, f"two connections from port {port}: {syns}"
    assert len(ended) == 2, [f.Summary for f in ended]
    for flow, own in zip(ended, (packets[:syns[1]], packets[syns[1]:])):
        forward, reverse = directions(own, client.ipv4, port)
        counters = flow.counters
        assert (counters.packets_forward, counters.bytes_forward) == (len(forward), sum(p[4] for p in forward))
        assert (counters.packets_reverse, counters.bytes_reverse) == (len(reverse), sum(p[4] for p in reverse))
    assert ended[0].counters.bytes_reverse > 1_000_000 > ended[1].counters.bytes_reverse > 0
    starts = [f for f in run.snapshot(at_server) if f.Summary == "TCP Flags: SYN"]
    assert len(starts) == 2, "each connection starts with its own SYN flow"
