"""L7 flows are built as bytes (the connection's serialized template plus the flow's own fields): they
must parse to exactly the Flow the message API builds from the same parts, and reach hooks and the
ring as such."""

from __future__ import annotations

import ipaddress
import socket

import dns.message
import dns.rrset
from google.protobuf import timestamp_pb2, wrappers_pb2

from collector.datapath import Decoder, Enricher
from collector.datapath import events as ev
from common.endpoints import Endpoint, EndpointCache
from collector.identity import IdentityAllocator
from collector.l7 import ConnKey, FqdnCache, L7Dispatcher
from collector.observer import ALL, Observer, parse_request
from collector.observer.wire import EncodedFlow
from proto.flow import flow_pb2
from proto.observer import observer_pb2

CLIENT = Endpoint(namespace="shop", pod_name="client-1", ips=("10.244.1.2", "fd00::2"), labels={"app": "client"},
                  workload_name="client", workload_kind="Deployment", device="lxc1", ifindex=7)
SERVER = Endpoint(namespace="data", pod_name="server-1", ips=("10.244.1.3", "fd00::3"), labels={"app": "server"},
                  device="lxc2", ifindex=8)
REQUEST = b"GET /users?id=1 HTTP/1.1\r\nHost: api:8080\r\nUser-Agent: t\r\n\r\n"
RESPONSE = b"HTTP/1.1 200 OK\r\nServer: nginx\r\nContent-Length: 3\r\n\r\nok\n"
NOT_FOUND = b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n"
POST = b"POST /p HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\n\r\nhi"


def dns_exchange(name: str, qid: int, rcode: int = 0) -> tuple[bytes, bytes]:
    query = dns.message.make_query(name, "A")
    query.id = qid
    answer = dns.message.make_response(query)
    answer.set_rcode(rcode)
    if not rcode:
        answer.answer.append(dns.rrset.from_text(name, 300, "IN", "CNAME", "edge.example.net."))
        answer.answer.append(dns.rrset.from_text("edge.example.net.", 60, "IN", "A", "93.184.216.34"))
    return query.to_wire(), answer.to_wire()


class Traffic:
    """Payload events of one node, decoded by a Decoder and, in step, by a reference L7 dispatcher
    whose records the test builds flows from with the message API."""

    def __init__(self, node_name: str = "node-1") -> None:
        cache = EndpointCache()
        cache.replace([CLIENT, SERVER])
        self.enricher = Enricher(cache, IdentityAllocator())
        self.names = FqdnCache()
        self.node_name = node_name
        self.decoder = Decoder(self.enricher, node_name, l7=L7Dispatcher(fqdn=self.names), names=self.names)
        self.decoder.interfaces = {7: "lxc1", 8: "lxc2"}
        self.reference = L7Dispatcher(fqdn=FqdnCache())
        self.ts = 5_000_000_000

    def send(self, src: str, sport: int, dst: str, dport: int, payload: bytes, is_reply: bool,
             proto: int = socket.IPPROTO_TCP, ifindex: int = 7, obs: int = ev.OBS_FROM_POD,
             seg_len: int | None = None) -> tuple[list, list[flow_pb2.Flow]]:
        """(what the datapath path decodes, the flows the message API builds from the same records)."""
        self.ts += 1_234_567
        family = 6 if ":" in src else 4
        fields = dict(ts_ns=self.ts, first_seen_ns=0, packets_fwd=0, bytes_fwd=0, packets_rev=0, bytes_rev=0,
                      saddr=ipaddress.ip_address(src).packed.ljust(16, b"\0"),
                      daddr=ipaddress.ip_address(dst).packed.ljust(16, b"\0"), ifindex=ifindex, skb_len=0,
                      policy_id=0, remote_identity=0, sport=sport, dport=dport, payload_off=0,
                      cap_len=len(payload), family=family, proto=proto, kind=ev.EV_NONE, obs=obs,
                      is_reply=int(is_reply), tcp_flags=0x18, verdict=ev.VERDICT_FORWARDED, policy_action=0,
                      policy_match=0, l7=ev.L7_PREFIX, flags_fwd=0, flags_rev=0,
                      seg_len=len(payload) if seg_len is None else seg_len)
        decoded = self.decoder.decode_encoded(ev.EVENT.pack(*ev.FlowEvent(**fields)) + payload)
        client, cport, server, port = (dst, dport, src, sport) if is_reply else (src, sport, dst, dport)
        conn = ConnKey(socket.AF_INET6 if family == 6 else socket.AF_INET, client, cport, server, port, proto)
        records = self.reference.on_segment(conn, not is_reply, payload, fields["seg_len"], self.ts)
        direction = flow_pb2.INGRESS if (obs == ev.OBS_TO_POD) != is_reply else flow_pb2.EGRESS
        built = []
        for record, got in zip(records, decoded):
            ends = (server, port, client, cport) if record.is_reply else (client, cport, server, port)
            built.append(self.build(record, got.parse(), family, ifindex, proto, direction, *ends))
        assert len(records) == len(decoded)
        return decoded, built

    def build(self, record, decoded: flow_pb2.Flow, family: int, ifindex: int, proto: int, direction: int,
              src: str, sport: int, dst: str, dport: int) -> flow_pb2.Flow:
        """An L7 flow as the message API makes it (uuid taken from the decoded flow: it is a counter)."""
        wall = self.ts + self.decoder._offset
        flow = flow_pb2.Flow(time=timestamp_pb2.Timestamp(seconds=wall // 10**9, nanos=wall % 10**9),
                             uuid=decoded.uuid, node_name=self.node_name, Type=flow_pb2.L7,
                             verdict=flow_pb2.FORWARDED, traffic_direction=direction, Summary=record.summary,
                             l7_partial=record.partial)
        flow.l7.CopyFrom(record.layer7)
        flow.IP.source, flow.IP.destination = src, dst
        flow.IP.ipVersion = flow_pb2.IPv4 if family == 4 else flow_pb2.IPv6
        for ip, endpoint, names in ((src, flow.source, flow.source_names),
                                    (dst, flow.destination, flow.destination_names)):
            peer = self.enricher.peer(ip)
            endpoint.CopyFrom(peer.endpoint)
            if not peer.is_pod:
                names.extend(self.names.names_for_ip(ip))
        flow.interface.index, flow.interface.name = ifindex, {7: "lxc1", 8: "lxc2"}[ifindex]
        flow.event_type.type = 129
        flow.is_reply.CopyFrom(wrappers_pb2.BoolValue(value=record.is_reply))
        ports = flow.l4.TCP if proto == socket.IPPROTO_TCP else flow.l4.UDP
        ports.source_port, ports.destination_port = sport, dport
        return flow


def exchange(traffic: Traffic, client: str, server: str, request: bytes, response: bytes, port: int = 8080,
             cport: int = 40000, **options) -> tuple[list, list]:
    decoded, built = traffic.send(client, cport, server, port, request, False, **options)
    more, more_built = traffic.send(server, port, client, cport, response, True, obs=ev.OBS_TO_POD, **options)
    return decoded + more, built + more_built


def test_http_flows_parse_to_the_flows_the_message_api_builds():
    traffic = Traffic()
    decoded, built = [], []
    for client, server in (("10.244.1.2", "10.244.1.3"), ("fd00::2", "fd00::3")):
        for request, response in ((REQUEST, RESPONSE), (REQUEST, NOT_FOUND), (REQUEST, RESPONSE), (POST, RESPONSE)):
            got, want = exchange(traffic, client, server, request, response)
            decoded += got
            built += want
        got, want = traffic.send(server, 8080, client, 40000, RESPONSE, True)  # no request: partial
        decoded += got
        built += want
    assert all(type(flow) is EncodedFlow for flow in decoded) and len(decoded) == 18
    assert [flow.parse() for flow in decoded] == built
    assert [f.l7_partial for f in built].count(True) == 2 and {f.l7.http.code for f in built} == {0, 200, 404}
    assert built[1].source.pod_name == "server-1" and built[1].l7.latency_ns == 1_234_567
    assert [flow.namespaces for flow in decoded[:2]] == [(("default", "shop"), ("default", "data")), (("default", "data"), ("default", "shop"))]


def test_dns_flows_and_names_of_later_flows_to_world_addresses():
    traffic = Traffic()
    query, answer = dns_exchange("www.example.com.", 7)
    decoded, built = exchange(traffic, "10.244.1.2", "192.0.2.53", query, answer, port=53, cport=5353,
                              proto=socket.IPPROTO_UDP)
    query, answer = dns_exchange("nope.example.com.", 8, rcode=3)
    got, want = exchange(traffic, "10.244.1.2", "192.0.2.53", query, answer, port=53, cport=5354,
                         proto=socket.IPPROTO_UDP)
    decoded, built = decoded + got, built + want
    got, want = exchange(traffic, "10.244.1.2", "93.184.216.34", b"GET / HTTP/1.1\r\nHost: www.example.com\r\n\r\n",
                         RESPONSE, port=80)
    decoded, built = decoded + got, built + want
    assert [flow.parse() for flow in decoded] == built
    assert list(built[1].l7.dns.ips) == ["93.184.216.34"] and built[3].l7.dns.rcode == 3
    assert built[4].destination.identity == 2 and list(built[4].destination_names) == [
        "www.example.com", "edge.example.net"]
    assert decoded[0].namespaces == (("default", "shop"),)


def test_hooks_and_readers_get_the_same_flows_and_a_nameless_decoder_gets_the_observers_name():
    traffic = Traffic(node_name="")
    decoded, built = exchange(traffic, "10.244.1.2", "10.244.1.3", REQUEST, RESPONSE)
    observer = Observer("node-9")
    seen = []
    observer.hooks.append(seen.append)
    observer.publish_many(decoded)
    for flow in built:
        flow.node_name = "node-9"
    assert seen == built
    stored = [r for chunk in observer.read(parse_request(observer_pb2.GetFlowsRequest(number=ALL))) for r in chunk]
    assert stored == [observer_pb2.GetFlowsResponse(flow=f, node_name="node-9", time=f.time) for f in built]
    assert observer.namespaces() == [("default", "data"), ("default", "shop")]
