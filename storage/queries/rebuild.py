"""Stored rows back into the flow.Flow that was written, exactly: `raw` plus the columns it left out."""

from __future__ import annotations

from proto.flow import flow_pb2
from storage.schema.columns import L4_PROTOCOL, L7_PROTO, STRIPPED, TCP_FLAG_NAMES


def rebuild(raw: bytes, time_ns: int, uuid: str) -> flow_pb2.Flow:
    """The stored flow, exactly as written: `raw` lacks time and uuid (see stored_bytes), the columns
    give them back; a flow written without them gets the insert time and the generated uuid."""
    flow = flow_pb2.Flow.FromString(raw)
    if not flow.HasField("time"):
        flow.time.seconds, flow.time.nanos = divmod(time_ns, 1_000_000_000)
    if not flow.uuid:
        flow.uuid = uuid
    return flow


def _text(value) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _endpoint(ep: flow_pb2.Endpoint, id_, identity, cluster, namespace, pod, labels, workloads) -> None:
    ep.SetInParent()
    ep.ID, ep.identity = id_, identity
    ep.cluster_name, ep.namespace, ep.pod_name = _text(cluster), _text(namespace), _text(pod)
    ep.labels.extend(_text(label) for label in labels)
    for workload in workloads:  # "kind/name"; only kinds without "/" are stripped from raw
        kind, _, name = _text(workload).partition("/")
        ep.workloads.add(name=name, kind=kind)


def rebuild_row(row) -> flow_pb2.Flow:
    """The stored flow from a row of REBUILD_COLUMNS: `raw` plus the top-level fields that ingest left
    out of it (raw_stripped) because these columns hold them exactly."""
    (raw, time_ns, uuid, stripped, s_id, s_identity, s_cluster, s_ns, s_pod, s_labels, s_workloads,
     d_id, d_identity, d_cluster, d_ns, d_pod, d_labels, d_workloads, ip_version, src_ip, dst_ip,
     xlated, encrypted, packets_fwd, bytes_fwd, packets_rev, bytes_rev, duration_ns, *l4_l7) = row
    flow = rebuild(raw, time_ns, _text(uuid))
    if stripped & STRIPPED["source"]:
        _endpoint(flow.source, s_id, s_identity, s_cluster, s_ns, s_pod, s_labels, s_workloads)
    if stripped & STRIPPED["destination"]:
        _endpoint(flow.destination, d_id, d_identity, d_cluster, d_ns, d_pod, d_labels, d_workloads)
    if stripped & STRIPPED["IP"]:
        ip = flow.IP
        ip.SetInParent()
        ip.ipVersion, ip.encrypted = ip_version, bool(encrypted)
        ip.source, ip.destination, ip.source_xlated = _text(src_ip), _text(dst_ip), _text(xlated)
    if stripped & STRIPPED["counters"]:
        c = flow.counters
        c.SetInParent()
        c.packets_forward, c.bytes_forward = packets_fwd, bytes_fwd
        c.packets_reverse, c.bytes_reverse, c.duration_ns = packets_rev, bytes_rev, duration_ns
    if stripped & STRIPPED["l4"]:
        _layer4(flow.l4, *l4_l7[:6])
    if stripped & STRIPPED["l7"]:
        _layer7(flow.l7, *l4_l7[6:])
    return flow


_L4_FIELDS = {number: name for name, number in L4_PROTOCOL.items() if name}


def _layer4(l4: flow_pb2.Layer4, protocol, src_port, dst_port, icmp_type, icmp_code, tcp_flags) -> None:
    message = getattr(l4, _L4_FIELDS[protocol])
    message.SetInParent()
    if protocol in (1, 58):
        message.type, message.code = icmp_type, icmp_code
        return
    message.source_port, message.destination_port = src_port, dst_port
    if tcp_flags:
        for i, name in enumerate(TCP_FLAG_NAMES):
            if tcp_flags >> i & 1:
                setattr(message.flags, name, True)


def _layer7(l7: flow_pb2.Layer7, proto, l7_type, latency, http_code, method, url, protocol, query,
            rcode, ips, qtypes, topic, api_key, error_code) -> None:
    l7.SetInParent()
    l7.type, l7.latency_ns = l7_type, latency
    if proto == L7_PROTO["http"]:
        l7.http.SetInParent()
        l7.http.code, l7.http.method, l7.http.url = http_code, _text(method), _text(url)
        l7.http.protocol = _text(protocol)
    elif proto == L7_PROTO["dns"]:
        l7.dns.SetInParent()
        l7.dns.query, l7.dns.rcode = _text(query), rcode
        l7.dns.ips.extend(_text(ip) for ip in ips)
        l7.dns.qtypes.extend(_text(q) for q in qtypes)
    elif proto == L7_PROTO["kafka"]:
        l7.kafka.SetInParent()
        l7.kafka.topic, l7.kafka.api_key, l7.kafka.error_code = _text(topic), _text(api_key), error_code
