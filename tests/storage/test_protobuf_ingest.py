"""ClickHouse-side protobuf parsing — the embedded engine's ingest view, and the same SQL making a
server's Native rows (storage.ingest.native) — fills exactly the columns that storage.ingest.columns
computes in Python, for every field family and edge case; `raw` keeps only what the columns cannot
give back, and every flow still rebuilds exactly."""

from google.protobuf import json_format

from proto.flow import flow_pb2
from storage.ingest.columns import flows_to_columns
from storage.schema.columns import NAMES, STRIPPED
from tests.storage.flows import BASE_NS, base, every_family


def _edge_cases() -> list[flow_pb2.Flow]:
    host = base(BASE_NS + 50)
    host.source.Clear()
    host.source.identity = 1
    remote = base(BASE_NS + 51, proto="ICMPv6")
    remote.destination.Clear()
    remote.destination.labels.append("reserved:remote-node")
    echo_reply = base(BASE_NS + 52, proto="ICMPv4")
    echo_reply.l4.ICMPv4.type = 0
    unknown_peer = base(BASE_NS + 53)
    unknown_peer.destination.Clear()
    no_l4 = base(BASE_NS + 54)
    no_l4.ClearField("l4")
    no_l4.ClearField("is_reply")
    no_workload = base(BASE_NS + 55)
    no_workload.source.ClearField("workloads")
    return [host, remote, echo_reply, unknown_peer, no_l4, no_workload]


def _unusual() -> dict[str, tuple[flow_pb2.Flow, int]]:
    """Flows with fields that columns do not hold exactly, and the fields `raw` may still leave out."""
    base_cut = sum(STRIPPED.values()) - STRIPPED["l7"]  # base() flows: TCP, no L7 record
    l7 = STRIPPED["l7"]
    no_counters = base_cut - STRIPPED["counters"]
    slash_kind = base(BASE_NS + 60)
    slash_kind.source.workloads[0].kind = "apps/v1/Deployment"  # "kind/name" would not split back
    encrypted = base(BASE_NS + 61)
    encrypted.IP.encrypted = True
    big_ids = base(BASE_NS + 62)
    big_ids.source.ID, big_ids.destination.identity = 4_000_000_000, 16_777_217
    big_ids.source.pod_name = "p" * 300  # a two-byte length
    long_label = base(BASE_NS + 73)
    long_label.source.labels.append("x" * 300)  # labels are sized as if shorter than 128: kept whole
    big_version = base(BASE_NS + 63)
    big_version.IP.ipVersion = 300  # an enum value the UInt8 column would narrow
    empty_ep = base(BASE_NS + 64)
    empty_ep.destination.Clear()
    empty_ep.destination.SetInParent()  # present but empty: nothing to cut, raw keeps the empty field
    empty_workload = base(BASE_NS + 65)
    empty_workload.source.workloads.add()  # a Workload with neither name nor kind
    first_seen = base(BASE_NS + 66)
    first_seen.counters.packets_forward = 3
    first_seen.counters.first_seen.FromNanoseconds(BASE_NS)  # no column: counters stay in raw
    big_counters = base(BASE_NS + 67)
    big_counters.counters.bytes_forward, big_counters.counters.duration_ns = 2**64 - 1, 2**40
    same_endpoints = base(BASE_NS + 68)
    same_endpoints.destination.CopyFrom(same_endpoints.source)  # same bytes, other tag: both cut
    lookalike = base(BASE_NS + 70)
    lookalike.source.Clear()
    lookalike.source.namespace = "a"
    # A label holding the very bytes of the source field (tag 8, length 3, namespace "a"): fields are
    # cut where the layout puts them, not where their bytes are found first.
    lookalike.destination.labels.append("B\x03\x1a\x01a")
    unknown = base(BASE_NS + 69)
    ep_bytes = unknown.source.SerializeToString() + b"\xf8\x01\x05"  # field 31 = 5: unknown here
    unknown.source.Clear()
    unknown.source.MergeFromString(ep_bytes)
    counters_tail = base(BASE_NS + 71, verdict=flow_pb2.DROPPED)
    counters_tail.counters.packets_forward, counters_tail.counters.bytes_reverse = 1, 300
    counters_tail.l7_partial, counters_tail.kernel_drop_reason = True, "NO_SOCKET"  # after counters
    counters_tail.drop_reason = 181  # field 3 and ethernet (4) come before IP
    counters_tail.ethernet.source = "aa:bb:cc:00:00:01"
    unknown_top = base(BASE_NS + 72)
    unknown_top.counters.packets_forward = 2
    unknown_top.MergeFromString(b"\xf8\xff\xff\x07\x01")  # field 16777215 = 1: written last
    dns_plain = base(BASE_NS + 74, proto="UDP", sport=53, reply=True)
    dns_plain.l7.type, dns_plain.l7.latency_ns = flow_pb2.RESPONSE, 900
    dns_plain.l7.dns.query, dns_plain.l7.dns.rcode = "db.shop.svc.", 3
    dns_plain.l7.dns.ips.append("10.0.0.1")
    dns_plain.l7.dns.qtypes.append("A")
    kafka_plain = base(BASE_NS + 75, dport=9092)
    kafka_plain.l7.type = flow_pb2.RESPONSE
    kafka_plain.l7.kafka.topic, kafka_plain.l7.kafka.api_key = "orders", "fetch"
    kafka_plain.l7.kafka.error_code = -1  # a negative int32: a 10-byte varint
    http_empty = base(BASE_NS + 76)
    http_empty.l7.type = flow_pb2.REQUEST
    http_empty.l7.http.SetInParent()  # present, nothing set: still rebuilt present
    empty_flags = base(BASE_NS + 77)
    empty_flags.l4.TCP.flags.SetInParent()  # present, no flag set: tcp_flags cannot tell, l4 stays
    big_port = base(BASE_NS + 78, dport=70_000)  # wider than the UInt16 column: l4 stays
    big_kafka_error = base(BASE_NS + 79)
    big_kafka_error.l7.kafka.error_code = 40_000  # wider than the Int16 column: l7 stays
    tls_http = base(BASE_NS + 80, dport=443)  # read from TLS plaintext (collector/tls): the mark survives
    tls_http.l7.type, tls_http.l7.http.method, tls_http.l7.http.url = flow_pb2.REQUEST, "GET", "http://web/cart"
    tls_http.l7_tls = True
    return {
        "tls_http": (tls_http, no_counters + l7),
        "dns_plain": (dns_plain, no_counters + l7),
        "kafka_plain": (kafka_plain, no_counters + l7),
        "http_empty": (http_empty, no_counters + l7),
        "empty_flags": (empty_flags, no_counters - STRIPPED["l4"]),
        "big_port": (big_port, no_counters - STRIPPED["l4"]),
        "big_kafka_error": (big_kafka_error, no_counters),
        "counters_tail": (counters_tail, base_cut),
        "long_label": (long_label, base_cut - STRIPPED["source"] - STRIPPED["counters"]),
        "unknown_top": (unknown_top, base_cut - STRIPPED["counters"]),
        "slash_kind": (slash_kind, base_cut - STRIPPED["source"] - STRIPPED["counters"]),
        "encrypted": (encrypted, base_cut - STRIPPED["counters"]),
        "big_ids": (big_ids, base_cut - STRIPPED["counters"]),
        "big_version": (big_version, base_cut - STRIPPED["IP"] - STRIPPED["counters"]),
        "empty_ep": (empty_ep, STRIPPED["source"] + STRIPPED["IP"] + STRIPPED["l4"]),
        "empty_workload": (empty_workload, base_cut - STRIPPED["counters"]),
        "first_seen": (first_seen, base_cut - STRIPPED["counters"]),
        "big_counters": (big_counters, base_cut),
        "same_endpoints": (same_endpoints, base_cut - STRIPPED["counters"]),
        "lookalike": (lookalike, base_cut - STRIPPED["counters"]),
        "unknown": (unknown, base_cut - STRIPPED["source"] - STRIPPED["counters"]),
    }


def test_clickhouse_parsing_matches_python_columns(store):
    unusual = _unusual()
    # Values wider than their column (ipVersion 300, port 70000, Kafka error 40000): the Python column
    # path refuses them, ClickHouse wraps them in the column and keeps the exact value in raw.
    wide = [unusual[name][0] for name in ("big_version", "big_port", "big_kafka_error")]
    every_family_flows = every_family()
    flows = sorted(every_family_flows + _edge_cases() + [flow for flow, _ in unusual.values()
                                                         if flow.uuid not in {w.uuid for w in wide}],
                   key=_time)
    columns = [n for n in NAMES if n != "raw"]
    select = (f"SELECT {', '.join(columns)} FROM {store.db}.flows WHERE uuid NOT IN "
              f"({', '.join(repr(f.uuid) for f in wide)}) ORDER BY time_ns")
    try:
        store.insert_columns(flows_to_columns(flows))
        by_python = store.backend.rows(select, binary=True)
        raw_sql = f"SELECT uuid, raw FROM {store.db}.flows ORDER BY time_ns"
        raw_by_python = store.backend.rows(raw_sql, binary=True)
        assert _equal_flows(store.query_flows(limit=None, first=True), flows)
        store.backend.execute(f"TRUNCATE TABLE {store.db}.flows")
        flows = sorted(flows + wide, key=_time)
        store.insert_flows(flows, [f.SerializeToString() for f in flows])
        assert store._ingest_schema or store._native, "ClickHouse should parse the protobuf itself"
        by_clickhouse = store.backend.rows(select, binary=True)
        assert len(by_clickhouse) == len(by_python) == len(flows) - len(wide)
        for row_py, row_ch in zip(by_python, by_clickhouse):
            flow = row_ch[columns.index("uuid")]
            diff = {n: (a, b) for n, a, b in zip(columns, row_py, row_ch) if a != b}
            assert not diff, f"flow {flow}: python vs clickhouse {diff}"
        stripped = dict(store.backend.rows(f"SELECT uuid, raw_stripped FROM {store.db}.flows"))
        # The embedded engine cuts what the columns rebuild out of raw; a server's rows keep raw whole
        # (the conversion into its Native rows costs 2.2x with the cut)
        cuts = store._ingest_schema is not None
        if not cuts:  # whole but for time and uuid: the very bytes the Python path keeps
            assert [r for r in store.backend.rows(raw_sql, binary=True)
                    if r[0].decode() not in {w.uuid for w in wide}] == raw_by_python
        for name, (flow, expected) in unusual.items():
            assert stripped[flow.uuid] == (expected if cuts else 0), f"{name}: raw_stripped {stripped[flow.uuid]}"
        # every family: endpoints, IP and l4 cut (counters stay where first_seen is set); l7 only for
        # the HTTP response (the request has headers, DNS ttl/cnames/..., Kafka api_version/...)
        want = [23, 23, 23, 23, 55, 23, 23, 23, 23]
        assert [stripped[f.uuid] for f in every_family_flows] == (want if cuts else [0] * len(want))
        assert _equal_flows(store.query_flows(limit=None, first=True), flows)
        for flow in flows:
            assert store.get_flow(flow.uuid) == flow
    finally:
        store.drop_database()


def _time(flow: flow_pb2.Flow) -> int:
    return flow.time.ToNanoseconds()


def _equal_flows(got: list[flow_pb2.Flow], flows: list[flow_pb2.Flow]) -> bool:
    assert len(got) == len(flows)
    for back, original in zip(got, flows):
        # Dicts first: a failure names the field that differs; then the messages themselves.
        assert json_format.MessageToDict(back) == json_format.MessageToDict(original), original.uuid
        assert back == original, original.uuid
        assert back.SerializeToString() == original.SerializeToString() or back.source.UnknownFields()
    return True
