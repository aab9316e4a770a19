"""Hubble-shaped flows of a small shop application, as the collector would publish them: TCP handshakes
and teardowns, policy verdicts and drops, DNS queries and answers, HTTP and Kafka requests and
responses, ICMP and traffic to the world. Shared by the metrics, Grafana and HTTP API tests."""

from __future__ import annotations

import itertools
import time
import uuid

from proto.flow import flow_pb2

_counter = itertools.count()


def endpoint(namespace: str, pod: str, app: str, identity: int, workload: str = "") -> flow_pb2.Endpoint:
    labels = sorted([f"k8s:app={app}", f"k8s:io.kubernetes.pod.namespace={namespace}",
                     "k8s:io.cilium.k8s.policy.cluster=default"])
    return flow_pb2.Endpoint(ID=identity % 4096, identity=identity, namespace=namespace, labels=labels,
                             pod_name=pod, workloads=[flow_pb2.Workload(name=workload or app, kind="Deployment")])


FRONTEND = endpoint("shop", "frontend-7d9f-abcde", "frontend", 1001)
BACKEND = endpoint("shop", "backend-5c6b-fghij", "backend", 1002)
DB = endpoint("shop", "db-0", "db", 1003, workload="db")
KAFKA = endpoint("shop", "kafka-0", "kafka", 1004, workload="kafka")
COREDNS = endpoint("kube-system", "coredns-66bf-klmno", "coredns", 1005, workload="coredns")
WORLD = flow_pb2.Endpoint(identity=2, labels=["reserved:world"])
IPS = {"frontend": "10.244.0.11", "backend": "10.244.0.12", "db": "10.244.0.13", "kafka": "10.244.0.14",
       "coredns": "10.244.0.10", "world": "93.184.216.34"}


def _ip(ep: flow_pb2.Endpoint) -> str:
    if not ep.workloads:
        return IPS["world"]
    return IPS.get(ep.workloads[0].name) or f"10.244.1.{ep.identity % 250}"


def base(src: flow_pb2.Endpoint, dst: flow_pb2.Endpoint, *, ts_ns: int | None = None, node: str = "node-a",
         verdict: int = flow_pb2.FORWARDED, etype: int = 4, subtype: int = 0, reply: bool | None = False,
         direction: int = flow_pb2.EGRESS) -> flow_pb2.Flow:
    flow = flow_pb2.Flow(verdict=verdict, node_name=node, uuid=str(uuid.uuid4()), traffic_direction=direction,
                         Type=flow_pb2.L7 if etype == 129 else flow_pb2.L3_L4)
    flow.time.FromNanoseconds(ts_ns if ts_ns is not None else time.time_ns())
    flow.source.CopyFrom(src)
    flow.destination.CopyFrom(dst)
    flow.IP.source, flow.IP.destination, flow.IP.ipVersion = _ip(src), _ip(dst), flow_pb2.IPv4
    flow.event_type.type, flow.event_type.sub_type = etype, subtype
    if reply is not None:
        flow.is_reply.value = reply
    if dst.labels == ["reserved:world"]:
        flow.destination_names.append("example.com")
    return flow


def tcp(src, dst, dport: int, *, syn=False, ack=False, fin=False, rst=False, reply=False, **kw) -> flow_pb2.Flow:
    flow = base(src, dst, reply=reply, **kw)
    sport = 40000 + next(_counter) % 20000
    if reply:
        sport, dport = dport, sport
    flow.l4.TCP.source_port, flow.l4.TCP.destination_port = sport, dport
    flags = flow.l4.TCP.flags
    flags.SYN, flags.ACK, flags.FIN, flags.RST = syn, ack, fin, rst
    flow.counters.packets_forward, flow.counters.bytes_forward = 10, 1500
    flow.counters.packets_reverse, flow.counters.bytes_reverse = 8, 12000
    return flow


def http_pair(client, server, method: str, url: str, code: int, latency_s: float, **kw) -> list[flow_pb2.Flow]:
    """Request and response records as the L7 parser publishes them (the response carries latency)."""
    request = base(client, server, etype=129, **kw)
    request.l7.type = flow_pb2.REQUEST
    request.l7.http.method, request.l7.http.url, request.l7.http.protocol = method, url, "HTTP/1.1"
    request.l4.TCP.source_port, request.l4.TCP.destination_port = 41000, 8080
    request.Summary = f"HTTP/1.1 {method} {url}"
    response = base(server, client, etype=129, reply=True, **kw)
    response.l7.type = flow_pb2.RESPONSE
    response.l7.latency_ns = int(latency_s * 1e9)
    response.l7.http.code, response.l7.http.method = code, method
    response.l7.http.url, response.l7.http.protocol = url, "HTTP/1.1"
    response.l4.TCP.source_port, response.l4.TCP.destination_port = 8080, 41000
    response.Summary = f"HTTP/1.1 {code} {int(latency_s * 1000)}ms ({method} {url})"
    return [request, response]


def grpc_pair(client, server, method: str, grpc_status: int, latency_s: float, **kw) -> list[flow_pb2.Flow]:
    """A gRPC call over HTTP/2: HTTP status 200 either way, the outcome in the grpc-status trailer."""
    flows = http_pair(client, server, "POST", f"http://{server.workloads[0].name}:8080/{method}", 200, latency_s, **kw)
    for flow in flows:
        flow.l7.http.protocol = "HTTP/2"
    flows[1].l7.http.headers.add(key="grpc-status", value=str(grpc_status))
    return flows


def dns_pair(client, query: str, ips: list[str], rcode: int = 0, **kw) -> list[flow_pb2.Flow]:
    request = base(client, COREDNS, etype=129, **kw)
    request.l7.type = flow_pb2.REQUEST
    request.l7.dns.query, request.l7.dns.qtypes[:] = query, ["A"]
    request.l4.UDP.source_port, request.l4.UDP.destination_port = 53000, 53
    response = base(COREDNS, client, etype=129, reply=True, **kw)
    response.l7.type = flow_pb2.RESPONSE
    response.l7.latency_ns = 800_000
    dns = response.l7.dns
    dns.query, dns.qtypes[:], dns.ips[:], dns.rcode, dns.ttl = query, ["A"], ips, rcode, 30
    dns.rrtypes[:] = ["A"] * len(ips)
    response.l4.UDP.source_port, response.l4.UDP.destination_port = 53, 53000
    return [request, response]


def kafka_pair(client, topic: str, **kw) -> list[flow_pb2.Flow]:
    out = []
    for l7type, reply in ((flow_pb2.REQUEST, False), (flow_pb2.RESPONSE, True)):
        src, dst = (client, KAFKA) if not reply else (KAFKA, client)
        flow = base(src, dst, etype=129, reply=reply, **kw)
        flow.l7.type = l7type
        flow.l7.latency_ns = 2_000_000 if reply else 0
        flow.l7.kafka.topic, flow.l7.kafka.api_key, flow.l7.kafka.api_version = topic, "produce", 7
        out.append(flow)
    return out


def policy_drop(src, dst, dport: int, **kw) -> flow_pb2.Flow:
    flow = tcp(src, dst, dport, syn=True, verdict=flow_pb2.DROPPED, etype=1, subtype=133, **kw)
    flow.drop_reason_desc = flow_pb2.POLICY_DENIED
    flow.drop_reason = 133
    flow.egress_denied_by.add(name="default-deny", namespace=src.namespace)
    return flow


def policy_verdict(src, dst, dport: int, verdict: int, match: int, **kw) -> flow_pb2.Flow:
    flow = tcp(src, dst, dport, syn=True, verdict=verdict, etype=5, **kw)
    flow.policy_match_type = match
    return flow


def icmp_echo(src, dst, **kw) -> flow_pb2.Flow:
    flow = base(src, dst, **kw)
    flow.l4.ICMPv4.type = 8
    return flow


def shop_round(ts_ns: int | None = None, node: str = "node-a") -> list[flow_pb2.Flow]:
    """One round of the shop's traffic: every flow kind the metrics and dashboards know about."""
    kw = {"ts_ns": ts_ns, "node": node}
    flows = [
        tcp(FRONTEND, BACKEND, 8080, syn=True, subtype=5, **kw),
        tcp(BACKEND, FRONTEND, 8080, syn=True, ack=True, reply=True, direction=flow_pb2.INGRESS, **kw),
        tcp(BACKEND, DB, 5432, syn=True, **kw),
        tcp(FRONTEND, BACKEND, 8080, fin=True, ack=True, **kw),
        tcp(BACKEND, DB, 5432, rst=True, **kw),
        tcp(FRONTEND, WORLD, 443, syn=True, subtype=11, **kw),
        policy_drop(FRONTEND, DB, 5432, **kw),
        policy_verdict(FRONTEND, BACKEND, 8080, flow_pb2.FORWARDED, 2, direction=flow_pb2.INGRESS, **kw),
        policy_verdict(FRONTEND, DB, 5432, flow_pb2.DROPPED, 0, **kw),
        icmp_echo(FRONTEND, BACKEND, **kw),
    ]
    flows += http_pair(FRONTEND, BACKEND, "GET", "http://backend:8080/users", 200, 0.012, **kw)
    flows += http_pair(FRONTEND, BACKEND, "POST", "http://backend:8080/orders", 500, 0.250, **kw)
    flows += http_pair(FRONTEND, BACKEND, "GET", "http://backend:8080/users", 200, 0.030,
                       direction=flow_pb2.INGRESS, **kw)
    flows += grpc_pair(FRONTEND, BACKEND, "shop.Cart/Add", 14, 0.020, **kw)
    flows += dns_pair(FRONTEND, "backend.shop.svc.cluster.local.", ["10.244.0.12"], **kw)
    flows += dns_pair(FRONTEND, "nosuch.example.", [], rcode=3, **kw)
    flows += kafka_pair(BACKEND, "orders", **kw)
    return flows
