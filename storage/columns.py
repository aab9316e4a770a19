"""flow.Flow -> the columns of the flows table, and the rules that derive workload and kind.

One pass over the flows fills one Python list per column (the backends turn the lists into Arrow arrays
or native columns in C). The flow itself is kept as protobuf bytes (`raw`) so every field, including the
ones without a column, comes back exactly: whole (but for time and uuid) from this Python path, and
without the top-level fields the columns hold exactly from the embedded engine's ingest
(storage.protobuf_ingest; raw_stripped says which, rebuild_row puts them back).
"""

from __future__ import annotations

import re
import time
import uuid as uuid_mod
from typing import Sequence

from proto.flow import flow_pb2
from proto.wire import varint
from storage.backend import Column

C = Column
FLOW_COLUMNS: tuple[Column, ...] = (
    C("time_ns", "UInt64", codec="CODEC(Delta, ZSTD(1))"),
    C("uuid", "String", codec="CODEC(ZSTD(1))"),
    C("node", "String", True),
    C("verdict", "UInt8"), C("drop_reason", "UInt16"), C("kernel_drop_reason", "String", True),
    C("direction", "UInt8"), C("is_reply", "UInt8"),  # is_reply: 0 no, 1 yes, 2 unknown
    C("flow_type", "UInt8"), C("event_type", "Int16"), C("event_subtype", "Int16"),
    C("obs_point", "UInt8"), C("interface_index", "UInt32"), C("interface_name", "String", True),
    C("ip_version", "UInt8"), C("src_ip", "String"), C("dst_ip", "String"),
    C("src_ip_xlated", "String"),
    C("protocol", "UInt8"),  # IANA number: 6 TCP, 17 UDP, 1 ICMPv4, 58 ICMPv6, 132 SCTP, 0 none
    C("src_port", "UInt16"), C("dst_port", "UInt16"), C("icmp_type", "UInt8"), C("icmp_code", "UInt8"),
    C("tcp_flags", "UInt16"),  # bit i = TCPFlags field i+1 (FIN=1, SYN=2, RST=4, PSH=8, ACK=16 ...)
    C("src_cluster", "String", True), C("src_namespace", "String", True), C("src_pod", "String"),
    C("src_workload", "String", True), C("src_kind", "String", True),
    C("src_workloads", "Array(String)"),  # "kind/name"
    C("src_identity", "UInt32"), C("src_labels", "Array(String)"),
    C("src_service_ns", "String", True), C("src_service", "String", True),
    C("src_names", "Array(String)"),
    C("dst_cluster", "String", True), C("dst_namespace", "String", True), C("dst_pod", "String"),
    C("dst_workload", "String", True), C("dst_kind", "String", True),
    C("dst_workloads", "Array(String)"),
    C("dst_identity", "UInt32"), C("dst_labels", "Array(String)"),
    C("dst_service_ns", "String", True), C("dst_service", "String", True),
    C("dst_names", "Array(String)"),
    C("l7_proto", "UInt8"),  # 0 none, 1 DNS, 2 HTTP, 3 Kafka
    C("l7_type", "UInt8"), C("latency_ns", "UInt64"),
    C("http_code", "UInt16"), C("http_method", "String", True), C("http_url", "String"),
    C("http_protocol", "String", True),
    C("dns_query", "String"), C("dns_rcode", "UInt16"), C("dns_ips", "Array(String)"),
    C("dns_qtypes", "Array(String)"),
    C("kafka_topic", "String"), C("kafka_api_key", "String", True), C("kafka_error_code", "Int16"),
    C("packets_fwd", "UInt64"), C("bytes_fwd", "UInt64"), C("packets_rev", "UInt64"),
    C("bytes_rev", "UInt64"), C("duration_ns", "UInt64"),
    C("raw", "String", codec="CODEC(ZSTD(3))"),
)
NAMES = tuple(c.name for c in FLOW_COLUMNS)
# Added by migration 7 (compact raw): what `raw` may leave out because these columns rebuild it exactly.
# raw_stripped: bits of STRIPPED, the top-level fields left out of that row's `raw` (0 = raw is whole
# but for time and uuid, as in every row written before; the Python column path always writes 0).
COMPACT_COLUMNS: tuple[Column, ...] = (
    C("src_id", "UInt32", codec="CODEC(T64, ZSTD(1))"), C("dst_id", "UInt32", codec="CODEC(T64, ZSTD(1))"),
    C("ip_encrypted", "UInt8", codec="CODEC(ZSTD(1))"), C("raw_stripped", "UInt8", codec="CODEC(ZSTD(1))"),
)
# Since migration 9 the uuid is stored as a UUID (16 bytes; a collector's prefix + counter uuids
# compress to ~3) when it is a canonical UUID text (lowercase, hyphenated: exactly what toString gives
# back), else as text in uuid_str with uuid_bin zero; `uuid` is then an ALIAS of the two (codecs of
# that table: storage.flows_v9).
UUID_COLUMNS: tuple[Column, ...] = (C("uuid_bin", "UUID"), C("uuid_str", "String"))
ZERO_UUID = "00000000-0000-0000-0000-000000000000"
CANONICAL_UUID = "^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$"
_CANONICAL = re.compile(CANONICAL_UUID.replace("$", r"\Z"))
# The columns the Python path inserts into a flows table of migration 9.
STORED_COLUMNS: tuple[Column, ...] = tuple(c for c in FLOW_COLUMNS if c.name != "uuid") + UUID_COLUMNS
STRIPPED = {"source": 1, "destination": 2, "IP": 4, "counters": 8, "l4": 16, "l7": 32}
# The columns `rebuild_row` reads, in its order.
REBUILD_COLUMNS = ("raw", "time_ns", "uuid", "raw_stripped") + tuple(
    f"{side}_{c}" for side in ("src", "dst")
    for c in ("id", "identity", "cluster", "namespace", "pod", "labels", "workloads")) + (
    "ip_version", "src_ip", "dst_ip", "src_ip_xlated", "ip_encrypted",
    "packets_fwd", "bytes_fwd", "packets_rev", "bytes_rev", "duration_ns",
    "protocol", "src_port", "dst_port", "icmp_type", "icmp_code", "tcp_flags",
    "l7_proto", "l7_type", "latency_ns", "http_code", "http_method", "http_url", "http_protocol",
    "dns_query", "dns_rcode", "dns_ips", "dns_qtypes", "kafka_topic", "kafka_api_key", "kafka_error_code")

L4_PROTOCOL = {"TCP": 6, "UDP": 17, "ICMPv4": 1, "ICMPv6": 58, "SCTP": 132, None: 0}
L7_PROTO = {None: 0, "dns": 1, "http": 2, "kafka": 3}
TCP_FLAG_NAMES = ("FIN", "SYN", "RST", "PSH", "ACK", "URG", "ECE", "CWR", "NS")
# Reserved identities (Cilium): the kind of endpoint they stand for.
RESERVED_KINDS = {1: "host", 2: "world", 3: "unmanaged", 4: "health", 5: "init", 6: "remote-node",
                  7: "kube-apiserver"}


def tcp_flag_bits(flags: flow_pb2.TCPFlags) -> int:
    return sum(1 << i for i, name in enumerate(TCP_FLAG_NAMES) if getattr(flags, name))


def endpoint_kind(ep: flow_pb2.Endpoint) -> str:
    """pod, world, host, or another reserved kind; an endpoint nobody knows is world."""
    if ep.identity in RESERVED_KINDS:
        return RESERVED_KINDS[ep.identity]
    if ep.pod_name:
        return "pod"
    for label in ep.labels:
        if label.startswith("reserved:"):
            return label[9:].partition("=")[0]
    return "world"


def endpoint_workload(ep: flow_pb2.Endpoint, kind: str, names) -> str:
    """The contract: workloads[0].name, else pod_name; world by its first DNS name, else "world"."""
    if kind == "pod":
        return ep.workloads[0].name if ep.workloads else ep.pod_name
    if kind == "world":
        return names[0] if names else "world"
    return kind


def stored_bytes(flow: flow_pb2.Flow, raw: bytes) -> bytes:
    """The protobuf kept in `raw`: the flow's bytes without time and uuid, which have their own columns
    (a random uuid twice would cost ~20 bytes per flow on disk); `rebuild` puts them back.
    The encoder writes fields in number order, so time (field 1) leads; uuid (field 34) is found by
    its exact tag + length + value. Anything unexpected is kept as it is."""
    if raw[:1] == b"\x0a" and flow.HasField("time") and 0 < raw[1] < 128:
        raw = raw[2 + raw[1]:]
    if flow.uuid:
        value = flow.uuid.encode()
        field = b"\x92\x02" + varint(len(value)) + value
        at = raw.find(field)
        if at >= 0:
            raw = raw[:at] + raw[at + len(field):]
    return raw


def flows_to_columns(flows: Sequence[flow_pb2.Flow], raws: Sequence[bytes] | None = None,
                     now_ns: int | None = None) -> dict[str, list]:
    """Columns for `flows`; `raws` are their serialized bytes when the caller has them already.
    A flow without time gets `now_ns` (insert time), one without uuid a new uuid (the raw bytes keep
    the original; rebuilding puts the column values back)."""
    cols: dict[str, list] = {name: [] for name in NAMES}
    now_ns = now_ns or time.time_ns()
    a = {name: cols[name].append for name in NAMES}
    tcp_bits, l4_numbers, l7_numbers = tcp_flag_bits, L4_PROTOCOL, L7_PROTO
    for i, f in enumerate(flows):
        t = f.time
        a["time_ns"](t.seconds * 1_000_000_000 + t.nanos if (t.seconds or t.nanos) else now_ns)
        a["uuid"](f.uuid or str(uuid_mod.uuid4()))
        a["node"](f.node_name)
        a["verdict"](f.verdict)
        a["drop_reason"](f.drop_reason_desc)
        a["kernel_drop_reason"](f.kernel_drop_reason)
        a["direction"](f.traffic_direction)
        a["is_reply"]((1 if f.is_reply.value else 0) if f.HasField("is_reply") else 2)
        a["flow_type"](f.Type)
        a["event_type"](f.event_type.type)
        a["event_subtype"](f.event_type.sub_type)
        a["obs_point"](f.trace_observation_point)
        a["interface_index"](f.interface.index)
        a["interface_name"](f.interface.name)
        ip = f.IP
        a["ip_version"](ip.ipVersion)
        a["src_ip"](ip.source)
        a["dst_ip"](ip.destination)
        a["src_ip_xlated"](ip.source_xlated)
        l4 = f.l4
        kind = l4.WhichOneof("protocol")
        a["protocol"](l4_numbers[kind])
        if kind == "TCP" or kind == "UDP" or kind == "SCTP":
            m = getattr(l4, kind)
            a["src_port"](m.source_port)
            a["dst_port"](m.destination_port)
            a["icmp_type"](0)
            a["icmp_code"](0)
            a["tcp_flags"](tcp_bits(m.flags) if kind == "TCP" and m.HasField("flags") else 0)
        else:
            a["src_port"](0)
            a["dst_port"](0)
            if kind:
                m = getattr(l4, kind)
                a["icmp_type"](m.type)
                a["icmp_code"](m.code)
            else:
                a["icmp_type"](0)
                a["icmp_code"](0)
            a["tcp_flags"](0)
        for side, ep, names, svc in (("src_", f.source, f.source_names, f.source_service),
                                     ("dst_", f.destination, f.destination_names,
                                      f.destination_service)):
            ekind = endpoint_kind(ep)
            a[side + "cluster"](ep.cluster_name)
            a[side + "namespace"](ep.namespace)
            a[side + "pod"](ep.pod_name)
            a[side + "workload"](endpoint_workload(ep, ekind, names))
            a[side + "kind"](ekind)
            a[side + "workloads"]([f"{w.kind}/{w.name}" for w in ep.workloads])
            a[side + "identity"](ep.identity)
            a[side + "labels"](list(ep.labels))
            a[side + "service_ns"](svc.namespace)
            a[side + "service"](svc.name)
            a[side + "names"](list(names))
        l7 = f.l7
        record = l7.WhichOneof("record") if f.HasField("l7") else None
        a["l7_proto"](l7_numbers[record])
        a["l7_type"](l7.type)
        a["latency_ns"](l7.latency_ns)
        http, dns, kafka = l7.http, l7.dns, l7.kafka
        a["http_code"](http.code)
        a["http_method"](http.method)
        a["http_url"](http.url)
        a["http_protocol"](http.protocol)
        a["dns_query"](dns.query)
        a["dns_rcode"](dns.rcode)
        a["dns_ips"](list(dns.ips))
        a["dns_qtypes"](list(dns.qtypes))
        a["kafka_topic"](kafka.topic)
        a["kafka_api_key"](kafka.api_key)
        a["kafka_error_code"](kafka.error_code)
        c = f.counters
        a["packets_fwd"](c.packets_forward)
        a["bytes_fwd"](c.bytes_forward)
        a["packets_rev"](c.packets_reverse)
        a["bytes_rev"](c.bytes_reverse)
        a["duration_ns"](c.duration_ns)
        a["raw"](stored_bytes(f, raws[i] if raws is not None else f.SerializeToString()))
    return cols


def split_uuids(cols: dict[str, list]) -> dict[str, list]:
    """`cols` (from flows_to_columns) for a flows table of migration 9: uuid as uuid_bin/uuid_str."""
    canonical = _CANONICAL.match
    uuids = cols["uuid"]
    out = {name: values for name, values in cols.items() if name != "uuid"}
    is_uuid = [canonical(u) is not None for u in uuids]
    out["uuid_bin"] = [u if ok else ZERO_UUID for u, ok in zip(uuids, is_uuid)]
    out["uuid_str"] = ["" if ok else u for u, ok in zip(uuids, is_uuid)]
    return out


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
