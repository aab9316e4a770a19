"""flow.Flow -> the columns of the flows table (storage.schema.columns), and the rules that derive
workload and kind.

One pass over the flows fills one Python list per column (the backends turn the lists into Arrow arrays
or native columns in C). The flow itself is kept as protobuf bytes (`raw`) so every field, including the
ones without a column, comes back exactly: whole (but for time and uuid) from this Python path, and
without the top-level fields the columns hold exactly from the embedded engine's ingest
(storage.schema.ingest_view; raw_stripped says which, storage.queries.rebuild puts them back).
"""

from __future__ import annotations

import time
import uuid as uuid_mod
from typing import Sequence

from proto.flow import flow_pb2
from proto.wire import tag, varint
from storage.schema.columns import (CANONICAL, L4_PROTOCOL, L7_PROTO, NAMES, RESERVED_KINDS, TCP_FLAG_NAMES,
                                    ZERO_UUID)

TIME_TAG, UUID_TAG = tag(flow_pb2.Flow, "time"), tag(flow_pb2.Flow, "uuid")


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
    if raw[:1] == TIME_TAG and flow.HasField("time") and 0 < raw[1] < 128:
        raw = raw[2 + raw[1]:]
    if flow.uuid:
        value = flow.uuid.encode()
        field = UUID_TAG + varint(len(value)) + value
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
    canonical = CANONICAL.match
    uuids = cols["uuid"]
    out = {name: values for name, values in cols.items() if name != "uuid"}
    is_uuid = [canonical(u) is not None for u in uuids]
    out["uuid_bin"] = [u if ok else ZERO_UUID for u, ok in zip(uuids, is_uuid)]
    out["uuid_str"] = ["" if ok else u for u, ok in zip(uuids, is_uuid)]
    return out
