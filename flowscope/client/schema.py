"""The SDK's flow table: one row per flow, columns named and typed for analysis — `time` as
timestamp[ns, UTC], enums as their names, labels and DNS answers as list<string>, latency and duration
as durations, and null where a flow has no such value (no pod, no port, no L7 record).

Both sources end here: storage answers the flows table's columns in Arrow (storage.queries.arrow), and
flows from a relay become those same columns (storage.ingest.columns.flows_to_columns); `analysis_batch`
turns them into this table with Arrow compute, so a relay and a store give the same table.
"""

from __future__ import annotations

import functools
from typing import Sequence

import pyarrow as pa
import pyarrow.compute as pc

from common.protocols import L4_NAMES, L7_RECORDS
from proto.flow import flow_pb2
from storage.ingest.columns import flows_to_columns
from storage.queries.arrow import schema as store_schema
from storage.schema.columns import TCP_FLAG_NAMES

_SIDES = (("src_", "source_"), ("dst_", "destination_"))
# The flows-table columns the SDK reads.
STORE_COLUMNS = (
    "time_ns", "uuid", "node", "verdict", "drop_reason", "direction", "is_reply", "flow_type", "event_type",
    "obs_point", "ip_version", "src_ip", "dst_ip", "protocol", "src_port", "dst_port", "icmp_type",
    "icmp_code", "tcp_flags",
    *(f"{s}{c}" for s, _ in _SIDES for c in ("cluster", "namespace", "pod", "workload", "kind", "identity",
                                               "labels", "names", "service")),
    "l7_proto", "l7_type", "latency_ns", "http_code", "http_method", "http_url", "http_protocol", "dns_query",
    "dns_rcode", "dns_ips", "dns_qtypes", "packets_fwd", "bytes_fwd", "packets_rev", "bytes_rev", "duration_ns")
STRING, LIST = pa.string(), pa.list_(pa.string())
DURATION = pa.duration("ns")
_ENDPOINT = (("cluster", STRING), ("namespace", STRING), ("pod_name", STRING), ("workload", STRING),
             ("kind", STRING), ("identity", pa.uint32()), ("labels", LIST), ("names", LIST),
             ("service", STRING))
FLOW_SCHEMA = pa.schema([
    ("time", pa.timestamp("ns", tz="UTC")), ("uuid", STRING), ("node_name", STRING), ("verdict", STRING),
    ("drop_reason", STRING), ("traffic_direction", STRING), ("is_reply", pa.bool_()), ("type", STRING),
    ("event_type", pa.int16()), ("observation_point", STRING), ("ip_version", STRING),
    ("source_ip", STRING), ("destination_ip", STRING), ("protocol", STRING), ("source_port", pa.uint16()),
    ("destination_port", pa.uint16()), ("icmp_type", pa.uint8()), ("icmp_code", pa.uint8()),
    ("tcp_flags", LIST),
    *((f"{side}{name}", kind) for _, side in _SIDES for name, kind in _ENDPOINT),
    ("l7", STRING), ("l7_type", STRING), ("latency", DURATION), ("http_code", pa.uint16()),
    ("http_method", STRING), ("http_url", STRING), ("http_protocol", STRING), ("dns_query", STRING),
    ("dns_rcode", pa.uint16()), ("dns_ips", LIST), ("dns_qtypes", LIST), ("packets_forward", pa.uint64()),
    ("bytes_forward", pa.uint64()), ("packets_reverse", pa.uint64()), ("bytes_reverse", pa.uint64()),
    ("duration", DURATION),
])
_ICMP = [n for n, name in L4_NAMES.items() if name.startswith("ICMP")]


@functools.lru_cache(maxsize=None)
def _names(table: tuple[tuple[int, str], ...], size: int = 1 << 16) -> pa.Array:
    """A lookup array: position n holds the name of n, null for 0 (unset), the number for unknown ones."""
    names = [str(n) for n in range(size)]
    names[0] = None
    for number, name in table:
        if number:
            names[number] = name
    return pa.array(names, STRING)


def _enum(column: pa.Array, enum) -> pa.Array:
    return pc.take(_names(tuple((v.number, v.name) for v in enum.DESCRIPTOR.values)), column.cast(pa.int32()))


def _text(column: pa.Array) -> pa.Array:
    """'' (an unset proto3 string) -> null."""
    return pc.if_else(pc.equal(column, ""), pa.scalar(None, STRING), column)


def _nonzero(column: pa.Array) -> pa.Array:
    return pc.if_else(pc.equal(column, 0), pa.scalar(None, column.type), column)


def _where(mask: pa.Array, column: pa.Array) -> pa.Array:
    return pc.if_else(mask, column, pa.scalar(None, column.type))


@functools.lru_cache(maxsize=None)
def _flag_lists() -> pa.Array:
    return pa.array([[name for i, name in enumerate(TCP_FLAG_NAMES) if bits >> i & 1]
                     for bits in range(1 << len(TCP_FLAG_NAMES))], LIST)


def analysis_batch(batch: pa.RecordBatch) -> pa.RecordBatch:
    """STORE_COLUMNS (as storage types them) -> FLOW_SCHEMA."""
    c = {name: batch.column(name) for name in batch.schema.names}
    icmp = pc.is_in(c["protocol"], pa.array(_ICMP, c["protocol"].type))
    l7 = pc.not_equal(c["l7_proto"], 0)
    out = [
        c["time_ns"].cast(pa.int64()).cast(FLOW_SCHEMA.field("time").type), c["uuid"], _text(c["node"]),
        _enum(c["verdict"], flow_pb2.Verdict), _enum(c["drop_reason"], flow_pb2.DropReason),
        _enum(c["direction"], flow_pb2.TrafficDirection),
        pc.take(pa.array([False, True, None]), c["is_reply"].cast(pa.int32())),
        _enum(c["flow_type"], flow_pb2.FlowType), c["event_type"],
        _enum(c["obs_point"], flow_pb2.TraceObservationPoint), _enum(c["ip_version"], flow_pb2.IPVersion),
        _text(c["src_ip"]), _text(c["dst_ip"]),
        pc.take(_names(tuple(L4_NAMES.items())), c["protocol"].cast(pa.int32())),
        _nonzero(c["src_port"]), _nonzero(c["dst_port"]), _where(icmp, c["icmp_type"]),
        _where(icmp, c["icmp_code"]), pc.take(_flag_lists(), c["tcp_flags"].cast(pa.int32())),
    ]
    for prefix, _ in _SIDES:
        out += [_text(c[prefix + "cluster"]), _text(c[prefix + "namespace"]), _text(c[prefix + "pod"]),
                _text(c[prefix + "workload"]), _text(c[prefix + "kind"]), c[prefix + "identity"],
                c[prefix + "labels"], c[prefix + "names"], _text(c[prefix + "service"])]
    out += [
        pc.take(_names(tuple(enumerate(L7_RECORDS, 1))), c["l7_proto"].cast(pa.int32())),
        _enum(c["l7_type"], flow_pb2.L7FlowType),
        _where(l7, c["latency_ns"].cast(pa.int64()).cast(DURATION)),
        _nonzero(c["http_code"]), _text(c["http_method"]), _text(c["http_url"]), _text(c["http_protocol"]),
        _text(c["dns_query"]), _where(pc.equal(c["l7_proto"], 1), c["dns_rcode"]), c["dns_ips"], c["dns_qtypes"],
        c["packets_fwd"], c["bytes_fwd"], c["packets_rev"], c["bytes_rev"],
        c["duration_ns"].cast(pa.int64()).cast(DURATION),
    ]
    return pa.RecordBatch.from_arrays(out, schema=FLOW_SCHEMA)


def flows_batch(flows: Sequence[flow_pb2.Flow]) -> pa.RecordBatch:
    """Flow messages (from a relay) -> FLOW_SCHEMA, through the columns storage would store."""
    columns = flows_to_columns(flows, [b""] * len(flows))
    target = store_schema(STORE_COLUMNS)
    return analysis_batch(pa.RecordBatch.from_arrays([pa.array(columns[f.name], f.type) for f in target],
                                                     schema=target))
