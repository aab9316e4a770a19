"""Constructed flows for filter, observer and CLI tests (no kernel needed)."""

from __future__ import annotations

from google.protobuf import timestamp_pb2, wrappers_pb2

from proto.flow import flow_pb2

BASE_NS = 1_700_000_000 * 1_000_000_000


def endpoint(namespace: str = "default", pod: str = "", labels=(), identity: int = 0,
             workload: str = "", kind: str = "Deployment") -> flow_pb2.Endpoint:
    ep = flow_pb2.Endpoint(namespace=namespace, pod_name=pod, identity=identity, labels=sorted(labels))
    if workload:
        ep.workloads.add(name=workload, kind=kind)
    return ep


def make_flow(src_ip: str = "10.244.0.10", dst_ip: str = "10.244.0.20", proto: str = "TCP",
              sport: int = 43210, dport: int = 8080, time_ns: int = BASE_NS, flags=("SYN",),
              src: flow_pb2.Endpoint | None = None, dst: flow_pb2.Endpoint | None = None,
              is_reply: bool | None = False, **fields) -> flow_pb2.Flow:
    """A trace flow from frontend to backend unless told otherwise; extra keyword args are Flow fields."""
    flow = flow_pb2.Flow(
        time=timestamp_pb2.Timestamp(seconds=time_ns // 10**9, nanos=time_ns % 10**9),
        verdict=flow_pb2.FORWARDED,
        IP=flow_pb2.IP(source=src_ip, destination=dst_ip, ipVersion=2 if ":" in src_ip else 1),
        source=src if src is not None else endpoint(
            "default", "frontend-7d4f9", ["k8s:app=frontend", "k8s:io.kubernetes.pod.namespace=default"],
            identity=256, workload="frontend"),
        destination=dst if dst is not None else endpoint(
            "default", "backend-5c8b6", ["k8s:app=backend", "k8s:tier=api",
                                         "k8s:io.kubernetes.pod.namespace=default"],
            identity=257, workload="backend"),
        Type=flow_pb2.L3_L4, node_name="node-1",
        event_type=flow_pb2.CiliumEventType(type=4, sub_type=0),
        traffic_direction=flow_pb2.INGRESS)
    if proto == "TCP":
        flow.l4.TCP.source_port, flow.l4.TCP.destination_port = sport, dport
        for f in flags:
            setattr(flow.l4.TCP.flags, f, True)
    elif proto == "UDP":
        flow.l4.UDP.source_port, flow.l4.UDP.destination_port = sport, dport
    elif proto == "ICMPv4":
        flow.l4.ICMPv4.type = 8
    elif proto == "ICMPv6":
        flow.l4.ICMPv6.type = 128
    if is_reply is not None:
        flow.is_reply.CopyFrom(wrappers_pb2.BoolValue(value=is_reply))
    for name, value in fields.items():
        field = getattr(flow, name)
        if hasattr(field, "CopyFrom"):
            field.CopyFrom(value)
        elif hasattr(field, "extend"):
            field.extend(value)
        else:
            setattr(flow, name, value)
    return flow


def http_flow(method: str = "GET", url: str = "http://backend:8080/users/1", code: int = 0,
              **kw) -> flow_pb2.Flow:
    l7 = flow_pb2.Layer7(type=flow_pb2.RESPONSE if code else flow_pb2.REQUEST,
                         http=flow_pb2.HTTP(method=method, url=url, code=code, protocol="HTTP/1.1"))
    return make_flow(l7=l7, Type=flow_pb2.L7, event_type=flow_pb2.CiliumEventType(type=129), **kw)


def dns_flow(query: str = "backend.default.svc.cluster.local.", **kw) -> flow_pb2.Flow:
    l7 = flow_pb2.Layer7(type=flow_pb2.REQUEST, dns=flow_pb2.DNS(query=query, qtypes=["A"]))
    return make_flow(proto="UDP", dport=53, l7=l7, Type=flow_pb2.L7,
                     event_type=flow_pb2.CiliumEventType(type=129), **kw)


def matches(flow: flow_pb2.Flow, **filter_fields) -> bool:
    from common.filters import build_filter
    return build_filter(flow_pb2.FlowFilter(**filter_fields))(flow)
