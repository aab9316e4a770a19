"""TLS events -> L7 flows without a kernel: crafted tls_event bytes through the translator and the
datapath's decoder, as the capture thread feeds them."""

from __future__ import annotations

import socket

from collector.datapath.decoder import Decoder
from collector.datapath.enrich import Enricher
from collector.identity import IdentityAllocator
from collector.l7 import L7Dispatcher
from collector.tls import events as tev
from collector.tls.translate import TlsTranslator, is_client
from common.endpoints import Endpoint, EndpointCache
from proto.flow import flow_pb2

CLIENT, SERVER = "10.1.0.1", "10.1.0.2"
EPHEMERAL = range(32768, 61000)


def packed(ip: str) -> bytes:
    return socket.inet_aton(ip).ljust(16, b"\0")


NETNS = {CLIENT: 4026532001, SERVER: 4026532002}  # each pod's network namespace inode


def event(op: int, data: bytes, local: str, lport: int, remote: str, rport: int, ssl: int = 0x10,
          tgid: int = 100, family: int = 4, netns: int = 0) -> bytes:
    header = tev.EVENT.pack(1_000_000 + len(data), ssl, packed(local), packed(remote), tgid, len(data),
                            netns or NETNS.get(local, 4026531840), lport, rport, len(data), family, op,
                            tev.L7_PREFIX)
    return header + data


def translator(local_pods=(CLIENT, SERVER)) -> TlsTranslator:
    cache = EndpointCache("node-1")
    cache.replace([Endpoint("shop", "client", (CLIENT,), {"app": "client"}, node_name="node-1", ifindex=7),
                   Endpoint("shop", "web", (SERVER,), {"app": "web"}, node_name="node-1", ifindex=8)])
    decoder = Decoder(Enricher(cache, IdentityAllocator()), "node-1", l7=L7Dispatcher(tls=True), tls=True)
    pods = {packed(ip): i for ip, i in zip((CLIENT, SERVER), (7, 8)) if ip in local_pods}
    netns = {NETNS[ip]: i for ip, i in zip((CLIENT, SERVER), (7, 8)) if ip in local_pods}
    return TlsTranslator(decoder, pods, netns, EPHEMERAL)


REQUEST = b"GET /cart HTTP/1.1\r\nHost: web\r\n\r\n"
RESPONSE = b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\n\r\n"


def flows_of(t: TlsTranslator, raws: list[bytes]) -> list[flow_pb2.Flow]:
    return [f.parse() for raw in raws for f in t.feed(raw)]


def test_the_server_end_reports_a_connection_between_two_local_pods():
    t = translator()
    flows = flows_of(t, [
        event(tev.OP_WRITE, REQUEST, CLIENT, 40000, SERVER, 443, ssl=1, tgid=1),
        event(tev.OP_READ, REQUEST, SERVER, 443, CLIENT, 40000, ssl=2, tgid=2),
        event(tev.OP_WRITE, RESPONSE, SERVER, 443, CLIENT, 40000, ssl=2, tgid=2),
        event(tev.OP_READ, RESPONSE, CLIENT, 40000, SERVER, 443, ssl=1, tgid=1),
    ])
    assert [(f.l7.type, f.traffic_direction, f.IP.source) for f in flows] == [
        (flow_pb2.REQUEST, flow_pb2.INGRESS, CLIENT), (flow_pb2.RESPONSE, flow_pb2.INGRESS, SERVER)]
    response = flows[1]
    assert response.l7.http.code == 503 and response.l7.http.url == "https://web/cart"
    assert response.l7_tls and response.Summary.endswith(" (TLS)")
    assert response.source.pod_name == "web" and response.destination.pod_name == "client"
    assert response.interface.index == 8
    assert t.stats.other_end == 2


def test_the_client_end_reports_when_the_server_is_not_a_local_pod():
    t = translator(local_pods=(CLIENT,))
    flows = flows_of(t, [event(tev.OP_WRITE, REQUEST, CLIENT, 40000, SERVER, 443),
                         event(tev.OP_READ, RESPONSE, CLIENT, 40000, SERVER, 443)])
    assert [(f.l7.type, f.traffic_direction) for f in flows] == [
        (flow_pb2.REQUEST, flow_pb2.EGRESS), (flow_pb2.RESPONSE, flow_pb2.EGRESS)]
    assert flows[1].l7.http.code == 503


def test_host_processes_are_not_reported():
    t = translator()
    assert flows_of(t, [event(tev.OP_WRITE, REQUEST, "192.168.1.5", 40000, SERVER, 443)]) == []
    assert t.stats.not_pod == 1


def test_a_pod_address_in_another_namespace_is_not_that_pod():
    """Another cluster or lab on the machine may reuse the address: the namespace decides."""
    t = translator()
    assert flows_of(t, [event(tev.OP_WRITE, REQUEST, CLIENT, 40000, "10.9.9.9", 443, netns=4026539999)]) == []
    assert t.stats.not_pod == 1


def test_writes_wait_for_their_connection():
    """gRPC core writes through memory BIOs: the event comes without addresses, a BIND names them."""
    t = translator(local_pods=(CLIENT,))
    unknown = event(tev.OP_WRITE, REQUEST, "0.0.0.0", 0, "0.0.0.0", 0, family=0, netns=NETNS[CLIENT])
    assert t.feed(unknown) == []
    bind = event(tev.OP_BIND, b"", CLIENT, 40000, SERVER, 443)
    flows = [f.parse() for f in t.feed(bind)]
    assert [f.l7.http.url for f in flows] == ["https://web/cart"]
    assert flows_of(t, [event(tev.OP_READ, RESPONSE, CLIENT, 40000, SERVER, 443)])[0].l7.http.code == 503


def test_ipv4_on_an_ipv6_socket_is_the_ipv4_connection():
    t = translator(local_pods=(SERVER,))
    mapped = lambda ip: b"\0" * 10 + b"\xff\xff" + socket.inet_aton(ip)  # noqa: E731
    raw = bytearray(event(tev.OP_READ, REQUEST, SERVER, 443, CLIENT, 40000, family=6))
    raw[16:32], raw[32:48] = mapped(SERVER), mapped(CLIENT)
    flows = [f.parse() for f in t.feed(bytes(raw))]
    assert [(f.IP.source, f.IP.destination, f.IP.ipVersion) for f in flows] == [(CLIENT, SERVER, flow_pb2.IPv4)]


def test_which_end_is_the_client():
    preface = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
    assert is_client(tev.OP_WRITE, REQUEST, 443, 40000, EPHEMERAL) is True  # the request decides, not ports
    assert is_client(tev.OP_READ, REQUEST, 40000, 443, EPHEMERAL) is False
    assert is_client(tev.OP_READ, preface, 443, 40000, EPHEMERAL) is False
    assert is_client(tev.OP_READ, RESPONSE, 40000, 443, EPHEMERAL) is True
    settings = b"\x00\x00\x00\x04\x00\x00\x00\x00\x00"  # an HTTP/2 server speaks first
    assert is_client(tev.OP_WRITE, settings, 443, 40000, EPHEMERAL) is False
    assert is_client(tev.OP_WRITE, settings, 443, 8443, EPHEMERAL) is None
