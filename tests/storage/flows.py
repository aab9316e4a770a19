"""Test flows: every field family (L3/L4, HTTP, DNS, Kafka, drops with policies, counters) and a
lab-like set of connections with known service-map edges."""

from __future__ import annotations

import itertools
import uuid

from proto.flow import flow_pb2

_counter = itertools.count()
BASE_NS = 1_790_000_000 * 1_000_000_000  # 2026-09-21, far from "now": partitions of its own


def endpoint(ep: flow_pb2.Endpoint, ns: str, pod: str, workload: str = "", identity: int = 300,
             labels: tuple[str, ...] = ()) -> None:
    ep.ID = 100 + identity % 100
    ep.identity = identity
    ep.namespace = ns
    ep.pod_name = pod
    ep.cluster_name = "default"
    ep.labels.extend(sorted(labels + (f"k8s:io.kubernetes.pod.namespace={ns}",)))
    if workload:
        ep.workloads.add(name=workload, kind="Deployment")


def base(t_ns: int, src=("shop", "frontend-7d9f-abc", "frontend"), dst=("shop", "backend-5c6d-xyz", "backend"),
         sport=40000, dport=8080, proto="TCP", verdict=flow_pb2.FORWARDED, reply=False,
         node="default/node-a") -> flow_pb2.Flow:
    f = flow_pb2.Flow(uuid=str(uuid.uuid4()), node_name=node, verdict=verdict, Type=flow_pb2.L3_L4)
    f.time.FromNanoseconds(t_ns)
    f.IP.source, f.IP.destination, f.IP.ipVersion = "10.244.0.10", "10.244.0.20", flow_pb2.IPv4
    endpoint(f.source, src[0], src[1], src[2], labels=(f"k8s:app={src[2]}",))
    endpoint(f.destination, dst[0], dst[1], dst[2], identity=301, labels=(f"k8s:app={dst[2]}",))
    l4 = getattr(f.l4, proto)
    if proto.startswith("ICMP"):
        l4.type = 8
    else:
        l4.source_port, l4.destination_port = sport, dport
    f.is_reply.value = reply
    f.traffic_direction = flow_pb2.EGRESS
    f.trace_observation_point = flow_pb2.FROM_ENDPOINT
    f.event_type.type = 4
    f.Summary = f"{proto} Flags: SYN"
    return f


def every_family(t0: int = BASE_NS) -> list[flow_pb2.Flow]:
    """One flow of each family, every field set that flowscope fills."""
    flows = []
    tcp = base(t0)
    tcp.l4.TCP.flags.SYN = True
    tcp.l4.TCP.flags.ACK = True
    tcp.ethernet.source, tcp.ethernet.destination = "aa:bb:cc:00:00:01", "aa:bb:cc:00:00:02"
    tcp.interface.index, tcp.interface.name = 17, "lxc12345"
    tcp.socket_cookie, tcp.cgroup_id = 99, 1234
    tcp.node_labels.extend(["kubernetes.io/hostname=node-a"])
    tcp.emitter.name, tcp.emitter.version = "flowscope", "0.1.0"
    tcp.destination_service.name, tcp.destination_service.namespace = "backend", "shop"
    tcp.counters.packets_forward, tcp.counters.bytes_forward = 10, 1500
    tcp.counters.packets_reverse, tcp.counters.bytes_reverse = 8, 9000
    tcp.counters.first_seen.FromNanoseconds(t0 - 5_000_000)
    tcp.counters.duration_ns = 5_000_000
    tcp.egress_allowed_by.add(name="allow-frontend", namespace="shop", labels=["k8s:app=frontend"],
                              revision=3, kind="CiliumNetworkPolicy")
    tcp.policy_match_type = 1
    flows.append(tcp)

    v6 = base(t0 + 1, proto="UDP", dport=5353)
    v6.IP.source, v6.IP.destination, v6.IP.ipVersion = "fd00:10:244::10", "fd00:10:244::20", flow_pb2.IPv6
    v6.IP.source_xlated = "fd00:10:244::99"
    flows.append(v6)

    icmp = base(t0 + 2, proto="ICMPv4")
    icmp.l4.ICMPv4.code = 3
    flows.append(icmp)

    req = base(t0 + 3, dport=8080)
    req.Type = flow_pb2.L7
    req.event_type.type = 129
    req.l7.type = flow_pb2.REQUEST
    req.l7.http.method, req.l7.http.url, req.l7.http.protocol = "GET", "http://backend:8080/users?id=1", "HTTP/1.1"
    req.l7.http.headers.add(key="User-Agent", value="curl/8.0")
    req.Summary = "HTTP/1.1 GET http://backend:8080/users?id=1"
    flows.append(req)

    resp = base(t0 + 4, src=("shop", "backend-5c6d-xyz", "backend"), dst=("shop", "frontend-7d9f-abc", "frontend"),
                sport=8080, dport=40000, reply=True)
    resp.Type = flow_pb2.L7
    resp.l7.type, resp.l7.latency_ns = flow_pb2.RESPONSE, 2_500_000
    resp.l7.http.code, resp.l7.http.method, resp.l7.http.url = 503, "GET", "http://backend:8080/users?id=1"
    resp.l7.http.protocol = "HTTP/1.1"
    resp.l7_partial = True
    flows.append(resp)

    dns = base(t0 + 5, src=("kube-system", "coredns-1", "coredns"), dst=("shop", "frontend-7d9f-abc", "frontend"),
               proto="UDP", sport=53, dport=33333, reply=True)
    dns.Type = flow_pb2.L7
    dns.l7.type, dns.l7.latency_ns = flow_pb2.RESPONSE, 800_000
    dns.l7.dns.query, dns.l7.dns.rcode = "api.example.com.", 0
    dns.l7.dns.ips.extend(["93.184.216.34", "2606:2800:220:1::1"])
    dns.l7.dns.ttl = 300
    dns.l7.dns.cnames.append("edge.example.net.")
    dns.l7.dns.qtypes.append("A")
    dns.l7.dns.rrtypes.extend(["A", "AAAA"])
    dns.l7.dns.observation_source = "flowscope"
    flows.append(dns)

    kafka = base(t0 + 6, dst=("data", "kafka-0", "kafka"), dport=9092)
    kafka.Type = flow_pb2.L7
    kafka.l7.type = flow_pb2.REQUEST
    kafka.l7.kafka.api_key, kafka.l7.kafka.api_version, kafka.l7.kafka.topic = "produce", 7, "orders"
    kafka.l7.kafka.correlation_id, kafka.l7.kafka.client_id = 42, "frontend-producer"
    flows.append(kafka)

    drop = base(t0 + 7, dst=("db", "postgres-0", "postgres"), dport=5432, verdict=flow_pb2.DROPPED)
    drop.ClearField("is_reply")
    drop.drop_reason = 133
    drop.drop_reason_desc = flow_pb2.POLICY_DENIED
    drop.kernel_drop_reason = "TC_EGRESS"
    drop.event_type.type = 1
    drop.egress_denied_by.add(name="deny-db", namespace="db", labels=["k8s:app=postgres"], kind="CiliumNetworkPolicy")
    drop.ingress_denied_by.add(name="default-deny", namespace="db")
    flows.append(drop)

    world = base(t0 + 8, dport=443)
    world.destination.Clear()
    world.destination.identity = 2
    world.destination.labels.append("reserved:world")
    world.IP.destination = "93.184.216.34"
    world.destination_names.append("api.example.com")
    world.traffic_direction = flow_pb2.EGRESS
    world.aggregate.egress_flow_count = 3
    flows.append(world)
    return flows
