"""The columns of the flows table and the codes they hold: what ingest writes and queries read.

A flow is kept as protobuf bytes (`raw`) beside its columns, so every field, including the ones without
a column, comes back exactly (storage.queries.rebuild).
"""

from __future__ import annotations

import re

from common.protocols import L4_NUMBERS, L7_RECORDS
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
# that table: storage.schema.migrations.flows_v9).
UUID_COLUMNS: tuple[Column, ...] = (C("uuid_bin", "UUID"), C("uuid_str", "String"))
ZERO_UUID = "00000000-0000-0000-0000-000000000000"
CANONICAL_UUID = "^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$"
CANONICAL = re.compile(CANONICAL_UUID.replace("$", r"\Z"))
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

# protocol: the IANA number (0 none); l7_proto: 1 + the index in L7_RECORDS (0 none)
L4_PROTOCOL = {**L4_NUMBERS, None: 0}
L7_PROTO = {None: 0, **{record: i + 1 for i, record in enumerate(L7_RECORDS)}}
TCP_FLAG_NAMES = ("FIN", "SYN", "RST", "PSH", "ACK", "URG", "ECE", "CWR", "NS")
# Reserved identities (Cilium): the kind of endpoint they stand for.
RESERVED_KINDS = {1: "host", 2: "world", 3: "unmanaged", 4: "health", 5: "init", 6: "remote-node",
                  7: "kube-apiserver"}
