"""The embedded engine's ingest table (`flows_ingest`, engine Null) and its materialized view into the
flows table: ClickHouse parses the envelope rows (storage.schema.envelope) and derives the flows columns
with the same rules as storage.ingest.columns (tests check both paths give identical rows); the aggregate
views on `flows` fire from there as usual. Migrations 5, 7, 8 and 9 make it; since migration 10 its
SQL runs as a chain of views, one per step (storage.schema.ingest_chain).

Since migration 7 the view keeps in `raw` only what the columns cannot give back: it removes time and
uuid (as storage.ingest.columns.stored_bytes does) and each of IP, l4, source, destination, l7 and
counters (migration 7 cut the four without l4/l7) whose columns rebuild it exactly — proven per row in
SQL: (1) the canonical size of the field rebuilt from the parsed values equals its stored size (an
unknown or column-less subfield, or a value a column would narrow, makes them differ), and (2) the
field's bytes are where the canonical layout puts them (the writer's own SerializeToString: fields in
number order, unknown fields last), so the bytes cut are that field: IP, l4, source and destination
follow time, verdict, drop_reason and ethernet; l7 follows them and Type, node_name, source_names and
destination_names; counters precede only l7_partial and kernel_drop_reason. Cutting by offset costs a
few substrings per row (searching the bytes cost ClickHouse 3x more). `raw_stripped` records which
fields were cut; storage.queries.rebuild puts them back.
"""

from __future__ import annotations

from proto.flow import flow_pb2
from proto.wire import tag
from storage.schema import columns
from storage.schema.envelope import CH_TYPES, CUT, KINDS, PART_FIELDS
from storage.schema.layout import Layout


def _kind(p: str) -> str:
    """SQL for the endpoint kind of side p ("source"/"destination"), the rules of columns.endpoint_kind:
    Python sends the common answers (reserved identity, pod); the labels decide the rest."""
    e = f"flow_{p}"
    reserved = f"arrayFirst(x -> startsWith(x, 'reserved:'), {e}_labels)"
    kinds = ", ".join(f"'{k}'" for k in KINDS)
    return (f"if({p}_kind > 0, arrayElement([{kinds}], {p}_kind), if({reserved} != '', "
            f"splitByChar('=', substring({reserved}, 10))[1], 'world'))")


def _side(p: str) -> dict[str, str]:
    """SQL for one endpoint side, same rules as storage.ingest.columns; `kind_<p>` comes from the inner query
    (computed once: it is the costly part)."""
    e, kind, names = f"flow_{p}", f"kind_{p}", f"flow_{p}_names"
    workload = (f"multiIf({kind} = 'pod', if(notEmpty({e}_workloads_name), {e}_workloads_name[1], "
                f"{e}_pod_name), {kind} = 'world', if(notEmpty({names}), {names}[1], 'world'), {kind})")
    return {"cluster": f"{e}_cluster_name", "namespace": f"{e}_namespace", "pod": f"{e}_pod_name",
            "workload": workload, "kind": kind,
            "workloads": f"arrayMap((k, n) -> concat(k, '/', n), {e}_workloads_kind, {e}_workloads_name)",
            "identity": f"{e}_identity", "labels": f"{e}_labels",
            "service_ns": f"flow_{p}_service_namespace", "service": f"flow_{p}_service_name",
            "names": names}


INGEST_COLUMNS = (
    ["flow_time_seconds Int64", "flow_time_nanos Int32", "flow_uuid String", "flow_node_name String",
     "flow_verdict Int32", "flow_drop_reason_desc Int32", "flow_kernel_drop_reason String",
     "flow_traffic_direction Int32", "flow_Type Int32", "flow_event_type_type Int32",
     "flow_event_type_sub_type Int32", "flow_trace_observation_point Int32", "flow_interface_index UInt32",
     "flow_interface_name String", "flow_IP_ipVersion Int32", "flow_IP_source String",
     "flow_IP_destination String", "flow_IP_source_xlated String"]
    + [f"flow_l4_{p}_{f} UInt32" for p in ("TCP", "UDP", "SCTP") for f in ("source_port", "destination_port")]
    + [f"flow_l4_{p}_{f} UInt32" for p in ("ICMPv4", "ICMPv6") for f in ("type", "code")]
    + [f"flow_l4_TCP_flags_{f} UInt8" for f in ("FIN", "SYN", "RST", "PSH", "ACK", "URG", "ECE", "CWR", "NS")]
    + [c for p in ("source", "destination") for c in (
        f"flow_{p}_cluster_name String", f"flow_{p}_namespace String", f"flow_{p}_pod_name String",
        f"flow_{p}_identity UInt32", f"flow_{p}_labels Array(String)", f"flow_{p}_workloads_name Array(String)",
        f"flow_{p}_workloads_kind Array(String)", f"flow_{p}_service_name String",
        f"flow_{p}_service_namespace String", f"flow_{p}_names Array(String)")]
    + ["flow_l7_type Int32", "flow_l7_latency_ns UInt64", "flow_l7_http_code UInt32",
       "flow_l7_http_method String", "flow_l7_http_url String", "flow_l7_http_protocol String",
       "flow_l7_dns_query String", "flow_l7_dns_rcode UInt32", "flow_l7_dns_ips Array(String)",
       "flow_l7_dns_qtypes Array(String)", "flow_l7_kafka_topic String", "flow_l7_kafka_api_key String",
       "flow_l7_kafka_error_code Int32"]
    + [f"flow_counters_{c} UInt64" for c in ("packets_forward", "bytes_forward", "packets_reverse",
                                             "bytes_reverse", "duration_ns")]
    + ["raw String", "is_reply UInt8", "l4 UInt8", "l7 UInt8", "source_kind UInt8", "destination_kind UInt8"])


def _select() -> dict[str, str]:
    """flows column -> SQL over flows_ingest."""
    flags = " + ".join(f"flow_l4_TCP_flags_{f} * {1 << i}" for i, f in
                       enumerate(("FIN", "SYN", "RST", "PSH", "ACK", "URG", "ECE", "CWR", "NS")))
    cols = {
        "time_ns": "if(flow_time_seconds = 0 AND flow_time_nanos = 0, toUInt64(toUnixTimestamp64Nano(now64(9))), "
                   "toUInt64(flow_time_seconds) * 1000000000 + toUInt64(flow_time_nanos))",
        "uuid": "if(flow_uuid = '', toString(generateUUIDv4()), flow_uuid)", "node": "flow_node_name",
        "verdict": "flow_verdict", "drop_reason": "flow_drop_reason_desc",
        "kernel_drop_reason": "flow_kernel_drop_reason", "direction": "flow_traffic_direction",
        "is_reply": "is_reply", "flow_type": "flow_Type", "event_type": "flow_event_type_type",
        "event_subtype": "flow_event_type_sub_type", "obs_point": "flow_trace_observation_point",
        "interface_index": "flow_interface_index", "interface_name": "flow_interface_name",
        "ip_version": "flow_IP_ipVersion", "src_ip": "flow_IP_source", "dst_ip": "flow_IP_destination",
        "src_ip_xlated": "flow_IP_source_xlated",
        "protocol": "transform(l4, [1, 2, 3, 4, 5], [6, 17, 1, 58, 132], 0)",
        "src_port": "multiIf(l4 = 1, flow_l4_TCP_source_port, l4 = 2, flow_l4_UDP_source_port, "
                    "l4 = 5, flow_l4_SCTP_source_port, 0)",
        "dst_port": "multiIf(l4 = 1, flow_l4_TCP_destination_port, l4 = 2, flow_l4_UDP_destination_port, "
                    "l4 = 5, flow_l4_SCTP_destination_port, 0)",
        "icmp_type": "multiIf(l4 = 3, flow_l4_ICMPv4_type, l4 = 4, flow_l4_ICMPv6_type, 0)",
        "icmp_code": "multiIf(l4 = 3, flow_l4_ICMPv4_code, l4 = 4, flow_l4_ICMPv6_code, 0)",
        "tcp_flags": f"if(l4 = 1, {flags}, 0)",
    }
    for short, side in (("src", "source"), ("dst", "destination")):
        cols.update({f"{short}_{k}": v for k, v in _side(side).items()})
    cols.update({
        "l7_proto": "l7", "l7_type": "flow_l7_type", "latency_ns": "flow_l7_latency_ns",
        "http_code": "flow_l7_http_code", "http_method": "flow_l7_http_method",
        "http_url": "flow_l7_http_url", "http_protocol": "flow_l7_http_protocol",
        "dns_query": "flow_l7_dns_query", "dns_rcode": "flow_l7_dns_rcode", "dns_ips": "flow_l7_dns_ips",
        "dns_qtypes": "flow_l7_dns_qtypes", "kafka_topic": "flow_l7_kafka_topic",
        "kafka_api_key": "flow_l7_kafka_api_key", "kafka_error_code": "flow_l7_kafka_error_code",
        "packets_fwd": "flow_counters_packets_forward", "bytes_fwd": "flow_counters_bytes_forward",
        "packets_rev": "flow_counters_packets_reverse", "bytes_rev": "flow_counters_bytes_reverse",
        "duration_ns": "flow_counters_duration_ns", "raw": "raw"})
    return cols


KINDS_STAGE = f"{_kind('source')} AS kind_source, {_kind('destination')} AS kind_destination"


def typed_columns(select: dict[str, str], flow_columns, low_cardinality: bool = False) -> str:
    """The final SELECT list: each flows column from `select`'s SQL, cast to the table's type."""
    def typed(c) -> str:
        kind = f"LowCardinality({c.type})" if low_cardinality and c.low_cardinality else c.type
        if select[c.name] == c.name and kind == c.type:
            return c.name
        return f"CAST({select[c.name]} AS {kind}) AS {c.name}"
    return ", ".join(typed(c) for c in flow_columns)


def ingest_select(source: str, select: dict[str, str], flow_columns, stages: tuple[str, ...] = (),
                  low_cardinality: bool = False) -> str:
    """The SELECT that turns envelope rows of `source` (a table or table function with the ingest
    table's columns) into flows columns; `stages`: further columns, each stage a subquery over the one
    before (named columns keep ClickHouse from re-analysing long expressions at every use: that cost
    0.3 s per insert); `low_cardinality`: those columns typed LowCardinality, as the table has them."""
    exprs = typed_columns(select, flow_columns, low_cardinality)
    inner = f"(SELECT *, {KINDS_STAGE} FROM {source})"
    for stage in stages:
        inner = f"(SELECT *, {stage} FROM {inner})"
    return f"SELECT {exprs} FROM {inner}"


def _view_sql(layout: Layout, select: dict[str, str], flow_columns, stages: tuple[str, ...] = ()) -> str:
    return (f"CREATE MATERIALIZED VIEW IF NOT EXISTS {layout.database}.flows_ingest_mv TO "
            f"{layout.table('flows')} AS {ingest_select(f'{layout.database}.flows_ingest', select, flow_columns, stages)}")


def statements(layout: Layout) -> list[str]:
    """Migration 5: the Null ingest table and its view into flows (embedded engine only)."""
    if not layout.features.protobuf_ingest:
        return []
    return [f"CREATE TABLE IF NOT EXISTS {layout.database}.flows_ingest ({', '.join(INGEST_COLUMNS)}) "
            "ENGINE = Null", _view_sql(layout, _select(), columns.FLOW_COLUMNS)]


# ----- migration 7: compact raw (CompactFlow envelopes) ---------------------------------------------
COMPACT_INGEST_COLUMNS = INGEST_COLUMNS + [
    "flow_source_ID UInt32", "flow_destination_ID UInt32", "flow_IP_encrypted UInt8"] + [
    f"parts_{name} {CH_TYPES[kind]}" for name, (kind, _) in PART_FIELDS.items()]


# Sizes are branchless arithmetic: the view evaluates them for every row (if/multiIf/AND here cost
# ClickHouse's short-circuit machinery several times the arithmetic).
def _vsize(x: str, short: bool = False, bits: int = 64) -> str:
    """SQL: bytes of the varint of unsigned x of `bits` bits; `short`: x < 16384 (a length inside a
    part, which is shorter than that)."""
    most = 2 if short else (bits + 6) // 7
    return "(1 + " + " + ".join(f"({x} >= {1 << (7 * i)})" for i in range(1, most)) + ")"


def num_size(x: str, bits: int = 64) -> str:  # a scalar field numbered < 16; zero is not written
    return f"({x} != 0) * (1 + {_vsize(x, bits=bits)})"


def _str_size(x: str) -> str:  # a string field numbered < 16; empty is not written
    return f"(length({x}) != 0) * (1 + {_vsize(f'length({x})', True)} + length({x}))"


def _strs_size(x: str) -> str:
    """A repeated string field numbered < 16, counting 1 length byte per element: less than the truth
    when an element has 128 bytes or more, and a size too small never equals the stored one (the
    canonical encoding is the shortest), so such a field is only kept whole. No lambda: they cost."""
    return f"(2 * length({x}) + length(arrayStringConcat({x})))"


def _endpoint_exact(e: str) -> str:
    names, kinds = f"{e}_workloads_name", f"{e}_workloads_kind"
    # each Workload: tag + 1 length byte (see _strs_size) + its non-empty name and kind fields
    workloads = (f"(2 * length({names}) + 2 * (length({names}) - countEqual({names}, '')) + "
                 f"2 * (length({kinds}) - countEqual({kinds}, '')) + length(arrayStringConcat({names})) + "
                 f"length(arrayStringConcat({kinds})))")
    size = " + ".join([
        num_size(f"{e}_ID", 32), num_size(f"{e}_identity", 32), _str_size(f"{e}_namespace"),
        _strs_size(f"{e}_labels"), _str_size(f"{e}_pod_name"), workloads, _str_size(f"{e}_cluster_name")])
    # workloads are stored as "kind/name": a kind containing "/" would not split back
    return (f"(({size}) = length(parts_{e[5:]})) * "
            f"(position(arrayStringConcat({kinds}), '/') = 0)")


def _l4_exact() -> str:
    flags = " + ".join(f"flow_l4_TCP_flags_{f}" for f in columns.TCP_FLAG_NAMES)
    inner = {1: f"{num_size('flow_l4_TCP_source_port', 32)} + {num_size('flow_l4_TCP_destination_port', 32)}"
                f" + (({flags}) != 0) * (2 + 2 * ({flags}))"}
    for kind, proto in ((2, "UDP"), (5, "SCTP")):
        inner[kind] = f"{num_size(f'flow_l4_{proto}_source_port', 32)} + " \
                      f"{num_size(f'flow_l4_{proto}_destination_port', 32)}"
    for kind, proto in ((3, "ICMPv4"), (4, "ICMPv6")):
        inner[kind] = f"{num_size(f'flow_l4_{proto}_type', 32)} + {num_size(f'flow_l4_{proto}_code', 32)}"
    size = " + ".join(f"(l4 = {kind}) * ({sql})" for kind, sql in inner.items())
    ports = " * ".join(f"(flow_l4_{p}_{d}_port <= 65535)" for p in ("TCP", "UDP", "SCTP")
                       for d in ("source", "destination"))
    icmp = " * ".join(f"(flow_l4_{p}_{f} <= 255)" for p in ("ICMPv4", "ICMPv6") for f in ("type", "code"))
    return (f"(((l4 != 0) * (1 + {_vsize(f'({size})', True)} + {size})) = length(parts_l4)) * "
            f"{ports} * {icmp}")


def _l7_exact() -> str:
    record = {1: " + ".join([_str_size("flow_l7_dns_query"), _strs_size("flow_l7_dns_ips"),
                             num_size("flow_l7_dns_rcode", 32), _strs_size("flow_l7_dns_qtypes")]),
              2: " + ".join([num_size("flow_l7_http_code", 32), _str_size("flow_l7_http_method"),
                             _str_size("flow_l7_http_url"), _str_size("flow_l7_http_protocol")]),
              3: " + ".join([num_size("toUInt64(toInt64(flow_l7_kafka_error_code))"),
                             _str_size("flow_l7_kafka_api_key"), _str_size("flow_l7_kafka_topic")])}
    rec = " + ".join(f"(l7 = {kind}) * ({sql})" for kind, sql in record.items())
    size = (f"{num_size('toUInt64(toInt64(flow_l7_type))')} + {num_size('flow_l7_latency_ns')} + "
            f"(l7 != 0) * (2 + {_vsize(f'({rec})', True)} + {rec})")
    # the columns' types: l7_type UInt8, http_code and dns_rcode UInt16, kafka_error_code Int16
    ranges = ("(flow_l7_type >= 0) * (flow_l7_type <= 255) * (flow_l7_http_code <= 65535) * "
              "(flow_l7_dns_rcode <= 65535) * (flow_l7_kafka_error_code >= -32768) * "
              "(flow_l7_kafka_error_code <= 32767)")
    return f"(({size}) = length(parts_l7)) * {ranges}"


def _exact() -> dict[str, str]:
    """SQL per strippable field: the columns rebuild it exactly (see the module docstring)."""
    ip = " + ".join([_str_size("flow_IP_source"), _str_size("flow_IP_destination"),
                     num_size("flow_IP_ipVersion"), f"(flow_IP_encrypted != 0) * {len(tag(flow_pb2.IP, 'encrypted')) + 1}",
                     _str_size("flow_IP_source_xlated")])
    counters = " + ".join(num_size(f"flow_counters_{c}") for c in (
        "packets_forward", "bytes_forward", "packets_reverse", "bytes_reverse", "duration_ns"))
    return {"source": _endpoint_exact("flow_source"), "destination": _endpoint_exact("flow_destination"),
            "IP": f"(flow_IP_ipVersion >= 0) * (flow_IP_ipVersion <= 255) * (({ip}) = length(parts_IP))",
            "counters": f"(({counters}) = length(parts_counters))", "l4": _l4_exact(), "l7": _l7_exact()}


def _varint_sql(n: str) -> str:
    """SQL: the varint of n < 16384 as bytes."""
    return f"if({n} < 128, char({n}), char({n} % 128 + 128, intDiv({n}, 128)))"


def _bytes_sql(data: bytes) -> str:
    return f"unhex('{data.hex()}')"


def _flow_tag(name: str) -> bytes:
    return tag(flow_pb2.Flow, name)


def _field_size(tag_bytes: int, length: str) -> str:
    """SQL: bytes of a length-delimited field (absent when empty), as Int64."""
    return f"toInt64(({length} != 0) * ({tag_bytes} + {_vsize(length)} + {length}))"


def _compact_stages(cut: tuple[str, ...]) -> tuple[str, ...]:
    """SQL of the view's extra stages: raw without time, uuid and the `cut` fields the columns rebuild
    exactly (`raw_kept`), and which fields were cut (`raw_bits`). Offsets are 0-based into raw."""
    head = "reinterpretAsUInt8(substring(raw, 2, 1))"
    time_tag, uuid_tag = _bytes_sql(_flow_tag("time")), _bytes_sql(_flow_tag("uuid"))
    exact = _exact()
    # between destination (9) and l7 (15): Type, node_name, source_names, destination_names
    middle = " + ".join([num_size("toUInt64(toInt64(flow_Type))"), _str_size("flow_node_name"),
                         _strs_size("flow_source_names"), _strs_size("flow_destination_names")])
    sizes = [  # time: the leading field 1, cut as columns.stored_bytes does
        f"toInt64(if(startsWith(raw, {time_tag}) AND {head} BETWEEN 1 AND 127, 2 + {head}, 0)) AS len_time",
        f"toInt64({num_size('toUInt64(toInt64(flow_verdict))')}) + "  # a negative enum: 10 bytes
        f"toInt64({num_size('parts_drop_reason', 32)}) + {_field_size(len(_flow_tag('ethernet')), 'length(parts_ethernet)')} AS len_head",
        f"toInt64({middle}) AS len_middle",
        f"{_field_size(len(_flow_tag('kernel_drop_reason')), 'length(flow_kernel_drop_reason)')} + "
        f"toInt64(parts_l7_partial) * {len(_flow_tag('l7_partial')) + 1} AS len_tail"]
    for name in CUT:
        part, field_tag = f"parts_{name}", _flow_tag(name)
        sizes.append(f"{_field_size(len(field_tag), f'length({part})')} AS len_{name}")
        if name in cut:
            sizes += [f"((length({part}) != 0) * (length({part}) < 16384) * {exact[name]} != 0) AS exact_{name}",
                      f"concat({_bytes_sql(field_tag)}, {_varint_sql(f'length({part})')}, {part}) AS field_{name}"]
    offsets = ["len_time + len_head AS at_IP", "at_IP + len_IP AS at_l4", "at_l4 + len_l4 AS at_source",
               "at_source + len_source AS at_destination",
               "at_destination + len_destination + len_middle AS at_l7",
               "length(raw) - len_tail - len_counters AS at_counters",
               # the canonical layout holds (else nothing is cut, raw stays whole)
               "at_l7 + len_l7 <= at_counters AND at_counters <= length(raw) AS layout_ok"]
    cuts = []
    for name in cut:
        cuts += [f"layout_ok AND exact_{name} AND substring(raw, at_{name} + 1, len_{name}) = field_{name} "
                 f"AS cut_{name}",
                 f"if(layout_ok, at_{name}, length(raw)) AS from_{name}",
                 f"from_{name} + cut_{name} * len_{name} AS after_{name}"]
    segments = [f"substring(raw, 1 + len_time, from_{cut[0]} - len_time)"]
    for name, following in zip(cut, cut[1:]):
        segments.append(f"substring(raw, 1 + after_{name}, from_{following} - after_{name})")
    segments.append(f"substring(raw, 1 + after_{cut[-1]})")
    kept = [f"concat({', '.join(segments)}) AS raw_cut",
            " + ".join(f"cut_{name} * {columns.STRIPPED[name]}" for name in cut) + " AS raw_bits"]
    uuid = [f"if(flow_uuid != '' AND length(flow_uuid) < 16384, replaceOne(raw_cut, concat("
            f"{uuid_tag}, {_varint_sql('length(flow_uuid)')}, flow_uuid), ''), raw_cut) AS raw_kept"]
    return tuple(", ".join(stage) for stage in (sizes, offsets, cuts, kept, uuid))


def _compact(cut: tuple[str, ...], uuid_split: bool) -> tuple[dict[str, str], tuple]:
    """(flows column -> SQL, the flows columns) of the ingest from CompactFlow envelopes, cutting `cut`
    out of raw; `uuid_split`: into the flows table of migration 9."""
    select = dict(_select(), raw="raw_kept", src_id="flow_source_ID", dst_id="flow_destination_ID",
                  ip_encrypted="flow_IP_encrypted", raw_stripped="raw_bits")
    flow_columns = columns.FLOW_COLUMNS + columns.COMPACT_COLUMNS
    if uuid_split:
        canonical = f"match(flow_uuid, '{columns.CANONICAL_UUID}')"
        select.update(uuid_bin=f"if(flow_uuid = '', generateUUIDv4(), toUUID(if({canonical}, flow_uuid, "
                               f"'{columns.ZERO_UUID}')))",
                      uuid_str=f"if({canonical}, '', flow_uuid)")
        flow_columns = tuple(c for c in flow_columns if c.name != "uuid") + columns.UUID_COLUMNS
    return select, flow_columns


def compact_statements(layout: Layout, cut: tuple[str, ...] = CUT, uuid_split: bool = False) -> list[str]:
    """Migrations 7 and 8: the ingest table and view again, for CompactFlow envelopes (embedded
    engine), cutting `cut` out of raw. Migration 9 (`uuid_split`): into the flows table whose uuid is
    uuid_bin (a canonical UUID text, or one generated for a flow without uuid) or else uuid_str."""
    if not layout.features.protobuf_ingest:
        return []
    select, flow_columns = _compact(cut, uuid_split)
    db = layout.database
    return [f"DROP TABLE IF EXISTS {db}.flows_ingest_mv", f"DROP TABLE IF EXISTS {db}.flows_ingest",
            f"CREATE TABLE {db}.flows_ingest ({', '.join(COMPACT_INGEST_COLUMNS)}) ENGINE = Null",
            _view_sql(layout, select, flow_columns, _compact_stages(cut))]


def _whole_stages() -> tuple[str, ...]:
    """Stages keeping raw whole but for time and uuid (as storage.ingest.columns.stored_bytes does):
    raw_bits 0. A few byte operations per row and a query planned in 0.05 s, where cutting fields
    costs ~4 us per row and 0.5 s of planning per query."""
    head = "reinterpretAsUInt8(substring(raw, 2, 1))"
    time_tag, uuid_tag = _bytes_sql(_flow_tag("time")), _bytes_sql(_flow_tag("uuid"))
    kept = (f"if(startsWith(raw, {time_tag}) AND {head} BETWEEN 1 AND 127, substring(raw, 3 + {head}), raw) "
            "AS raw_cut")
    uuid = (f"if(flow_uuid != '' AND length(flow_uuid) < 16384, replaceOne(raw_cut, concat({uuid_tag}, "
            f"{_varint_sql('length(flow_uuid)')}, flow_uuid), ''), raw_cut) AS raw_kept, 0 AS raw_bits")
    return kept, uuid


def latest_parts(cut: bool = True) -> tuple[dict[str, str], tuple, tuple[str, ...]]:
    """(flows column -> SQL, the flows columns in the table's order, the stages before the final
    SELECT but the kinds) of the latest ingest from CompactFlow envelope rows; `cut`: raw without
    what the columns rebuild (else whole but for time and uuid)."""
    select, flow_columns = _compact(CUT, True)
    # in the table's column order: 18.16's Distributed tables forward a block to the shards by position
    order = [c.name for c in columns.STORED_COLUMNS + columns.COMPACT_COLUMNS]
    flow_columns = tuple(sorted(flow_columns, key=lambda c: order.index(c.name)))
    return select, flow_columns, _compact_stages(CUT) if cut else _whole_stages()


def latest_select(source: str, low_cardinality: bool, cut: bool = True) -> tuple[str, tuple]:
    """(SELECT, its columns) of the latest ingest view over `source` (CompactFlow envelope rows): the
    same SQL turns envelopes into a server's rows in the embedded engine (storage.ingest.native);
    `low_cardinality`: as the server's table has them (18.16 converts no String to LowCardinality);
    `cut`: raw without what the columns rebuild (else whole but for time and uuid)."""
    select, flow_columns, stages = latest_parts(cut)
    return ingest_select(source, select, flow_columns, stages, low_cardinality), flow_columns
