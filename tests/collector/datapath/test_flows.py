"""Real traffic between lab pods appears as Hubble-shaped flows with the right 5-tuple, direction,
reply flag, TCP flags and both ends' pod identity."""

from __future__ import annotations

import pytest

from collector.identity import IdentityAllocator
from proto.flow import flow_pb2
from tests.collector.datapath.helpers import TOPOLOGY, curl, of_connection, wait_listening

pytestmark = pytest.mark.root


@pytest.fixture
def shop(lab_factory, collector_factory):
    """A lab and a collector (aggregation medium) attached to its pods."""
    lab = lab_factory(TOPOLOGY)
    run = collector_factory(lab)
    wait_listening(lab, "server", 8080)
    wait_listening(lab, "server", 5353, udp=True)
    return lab, run


def expected_endpoint(lab, pod: str) -> flow_pb2.Endpoint:
    ep = next(e for e in lab.endpoints() if e.pod_name == lab.pod(pod).name)
    return flow_pb2.Endpoint(namespace=ep.namespace, pod_name=ep.pod_name, labels=ep.hubble_labels(),
                             identity=IdentityAllocator().identity_for(ep.identity_labels()))


def assert_endpoint(actual: flow_pb2.Endpoint, expected: flow_pb2.Endpoint) -> None:
    assert (actual.namespace, actual.pod_name, list(actual.labels), actual.identity) == \
        (expected.namespace, expected.pod_name, list(expected.labels), expected.identity)


def test_http_connection_flows(shop):
    lab, run = shop
    server_ip = lab.pod("server").ipv4
    port = curl(lab, "client", f"http://{server_ip}:8080/")
    flows = run.wait_for(of_connection(port), count=8)
    client_dev, server_dev = lab.pod("client").device, lab.pod("server").device

    syn = [f for f in flows if f.l4.TCP.flags.SYN and not f.l4.TCP.flags.ACK]
    assert sorted(f.interface.name for f in syn) == sorted([client_dev, server_dev])
    for flow in syn:
        assert (flow.IP.source, flow.IP.destination) == (lab.pod("client").ipv4, server_ip)
        assert (flow.l4.TCP.source_port, flow.l4.TCP.destination_port) == (port, 8080)
        assert flow.is_reply.value is False and flow.HasField("is_reply")
        assert flow.verdict == flow_pb2.FORWARDED and flow.Type == flow_pb2.L3_L4
        assert flow.event_type.type == 4 and flow.Summary == "TCP Flags: SYN"
        assert_endpoint(flow.source, expected_endpoint(lab, "client"))
        assert_endpoint(flow.destination, expected_endpoint(lab, "server"))
        assert flow.source.workloads[0].name == "client" and flow.node_name == run.collector.config.node_name
        assert flow.uuid and flow.time.seconds > 0
    at = {f.interface.name: f for f in syn}
    assert at[client_dev].trace_observation_point == flow_pb2.FROM_ENDPOINT
    assert at[client_dev].traffic_direction == flow_pb2.EGRESS
    assert at[server_dev].trace_observation_point == flow_pb2.TO_ENDPOINT
    assert at[server_dev].traffic_direction == flow_pb2.INGRESS

    synack = [f for f in flows if f.l4.TCP.flags.SYN and f.l4.TCP.flags.ACK]
    assert len(synack) == 2
    for flow in synack:
        assert flow.is_reply.value is True and flow.Summary == "TCP Flags: SYN, ACK"
        assert (flow.IP.source, flow.l4.TCP.source_port, flow.l4.TCP.destination_port) == (server_ip, 8080, port)
        assert_endpoint(flow.source, expected_endpoint(lab, "server"))
    # The reply keeps the connection's direction from each pod's point of view.
    assert {f.interface.name: f.traffic_direction for f in synack} == \
        {client_dev: flow_pb2.EGRESS, server_dev: flow_pb2.INGRESS}
    fins = [f for f in flows if f.l4.TCP.flags.FIN and "closed" not in f.Summary]
    assert len(fins) == 4  # each side's FIN, seen on both devices

    http = run.wait_for(lambda f: f.Type == flow_pb2.L7 and port in (f.l4.TCP.source_port,
                                                                      f.l4.TCP.destination_port), count=2)
    assert [f.l7.type for f in http] == [flow_pb2.REQUEST, flow_pb2.RESPONSE]
    assert http[0].l7.http.method == "GET" and http[1].l7.http.code == 200
    assert http[1].is_reply.value is True and http[1].IP.source == server_ip
    assert {f.interface.name for f in http} == {server_dev}  # captured once, on the server's device


def test_udp_and_ping(shop):
    lab, run = shop
    server_ip = lab.pod("server").ipv4
    lab.exec("client", ["python3", "-c", "import socket,sys; s=socket.socket(socket.AF_INET, socket.SOCK_DGRAM);"
                        "s.settimeout(5); s.sendto(b'hello', (sys.argv[1], 5353)); s.recvfrom(100)", server_ip],
             check=True)
    udp = run.wait_for(lambda f: f.l4.HasField("UDP") and 5353 in (f.l4.UDP.source_port, f.l4.UDP.destination_port),
                       count=4)
    assert sorted((f.interface.name, f.is_reply.value) for f in udp) == sorted(
        (dev, reply) for dev in (lab.pod("client").device, lab.pod("server").device) for reply in (False, True))
    request = next(f for f in udp if not f.is_reply.value)
    assert (request.IP.destination, request.l4.UDP.destination_port, request.Summary) == (server_ip, 5353, "UDP")
    assert request.source.pod_name == lab.pod("client").name

    for family, address, field in ((4, server_ip, "ICMPv4"), (6, lab.pod("server").ipv6, "ICMPv6")):
        lab.exec("client", ["ping", f"-{family}", "-c", "2", "-i", "0.2", address], check=True)
        icmp = run.wait_for(lambda f: f.l4.HasField(field) and "Echo" in f.Summary, count=4)
        request = next(f for f in icmp if not f.is_reply.value)
        reply = next(f for f in icmp if f.is_reply.value)
        assert request.IP.destination == address and request.Summary == f"{field} EchoRequest"
        assert reply.IP.source == address and reply.Summary == f"{field} EchoReply"
        assert request.IP.ipVersion == (flow_pb2.IPv4 if family == 4 else flow_pb2.IPv6)
        assert request.destination.pod_name == lab.pod("server").name
