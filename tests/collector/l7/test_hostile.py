"""Hostile and odd input: nothing raises, memory stays bounded, problems are counted by kind."""

from __future__ import annotations

import os
import socket
import struct
import uuid
import warnings

import dns.message
import h2.config
import h2.connection
import hpack

from collector.l7 import ConnKey, FqdnCache, L7Config, L7Dispatcher, PortRule
from proto.flow import flow_pb2

with warnings.catch_warnings():  # kafka-python loads its schemas with deprecated importlib.resources calls
    warnings.simplefilter("ignore", DeprecationWarning)
    from kafka.protocol.consumer import FetchRequest, FetchResponse
    from kafka.protocol.metadata import MetadataRequest, MetadataResponse

TCP, UDP = socket.IPPROTO_TCP, socket.IPPROTO_UDP


def conn(port: int, proto: int = TCP, client_port: int = 40000) -> ConnKey:
    return ConnKey(socket.AF_INET, "10.0.0.1", client_port, "10.0.0.2", port, proto)


def feed(d: L7Dispatcher, key: ConnKey, from_client: bool, data: bytes, prefix: int = 512, ts: int = 1):
    return d.on_segment(key, from_client, data[:prefix], len(data), ts)


def kinds(d: L7Dispatcher) -> dict:
    return {kind: n for (_, kind), n in d.stats.errors_by_kind.items()}


def test_binary_on_port_80_is_counted_and_http_found_again():
    d = L7Dispatcher()
    key = conn(80)
    assert feed(d, key, True, os.urandom(3000)) == []
    assert d.stats.parse_errors["http"] == 1 and kinds(d) == {"not_http": 1}
    records = feed(d, key, True, b"GET /x HTTP/1.1\r\nHost: h\r\n\r\n")
    assert [r.summary for r in records] == ["HTTP/1.1 GET http://h/x"]


def test_64k_header_line_is_bounded():
    config = L7Config()
    d = L7Dispatcher(config)
    key = conn(8080)
    head = b"GET / HTTP/1.1\r\nX-Big: " + b"a" * 65536
    for i in range(0, len(head), 1000):  # whole segments, no prefix cut: the cap must stop buffering
        feed(d, key, True, head[i:i + 1000], prefix=1000)
    parser = d._conns[key]
    assert len(parser.client.buf) <= config.max_header_bytes
    assert kinds(d) == {"header_too_large": 1}
    # the same line seen through 512-byte prefixes: the head is cut short -> partial request, counted
    d2 = L7Dispatcher()
    records = feed(d2, key, True, head + b"\r\n\r\n")
    assert [r.partial for r in records] == [True] and kinds(d2) == {"truncated": 1}


def test_response_without_request_is_counted_and_partial():
    d = L7Dispatcher()
    records = feed(d, conn(8080), False, b"HTTP/1.1 503 Busy\r\nContent-Length: 0\r\n\r\n")
    assert [(r.layer7.http.code, r.partial) for r in records] == [(503, True)]
    assert kinds(d) == {"response_without_request": 1}


def test_bad_content_length_and_chunks():
    d = L7Dispatcher()
    key = conn(8080)
    feed(d, key, True, b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: -5\r\n\r\n")
    feed(d, key, True, b"GET / HTTP/1.1\r\nHost: h\r\n\r\n")
    feed(d, key, False, b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n")
    assert kinds(d) == {"bad_content_length": 1, "bad_chunk": 1}


def test_truncated_dns_and_compression_pointer_loop():
    d = L7Dispatcher()
    query = dns.message.make_query("example.test.", "A").to_wire()
    feed(d, conn(53, UDP), True, query[:15])  # cut inside the question
    loop = struct.pack(">HHHHHH", 0x1234, 0x8180, 1, 1, 0, 0) + b"\xc0\x0c" + b"\x00\x01\x00\x01"
    feed(d, conn(53, UDP, 40001), False, loop)
    tcp = struct.pack(">H", 5) + b"\x00" * 5  # TCP length shorter than a DNS header
    feed(d, conn(53, TCP, 40002), True, tcp)
    assert d.stats.parse_errors["dns"] == 3 and d.stats.records["dns"] == 0
    assert set(kinds(d)) <= {"truncated", "malformed", "bad_length"}


def test_dns_address_record_of_another_class_is_not_an_address():
    """Found by tests/fuzz/fuzz_dns.py: type A in class 5 is generic rdata, with no address to read."""
    import dns.rrset
    query = dns.message.make_query("odd.test.", "A")
    response = dns.message.make_response(query)
    response.answer.append(dns.rrset.from_text("odd.test.", 30, "CLASS5", "A", r"\# 4 0a000001"))
    response.answer.append(dns.rrset.from_text("odd.test.", 30, "IN", "A", "10.0.0.9"))
    d = L7Dispatcher()
    feed(d, conn(53, UDP), True, query.to_wire())
    [record] = feed(d, conn(53, UDP), False, response.to_wire())
    assert list(record.layer7.dns.ips) == ["10.0.0.9"] and not kinds(d)


def test_dns_over_tcp_split_and_coalesced():
    d = L7Dispatcher()
    key = conn(53, TCP)
    q1 = dns.message.make_query("a.test.", "A")
    q2 = dns.message.make_query("b.test.", "AAAA")
    stream = b"".join(struct.pack(">H", len(w)) + w for w in (q1.to_wire(), q2.to_wire()))
    out = feed(d, key, True, stream[:7]) + feed(d, key, True, stream[7:])
    assert [r.layer7.dns.query for r in out] == ["a.test.", "b.test."]
    answer = dns.message.make_response(q1)
    answer.answer.append(dns.rrset.from_text("a.test.", 30, "IN", "A", "10.1.1.1"))
    wire = answer.to_wire()
    out = feed(d, key, False, struct.pack(">H", len(wire)) + wire)
    assert list(out[0].layer7.dns.ips) == ["10.1.1.1"] and out[0].layer7.dns.ttl == 30
    assert d.fqdn.names_for_ip("10.1.1.1") == ["a.test"]


def _h2_client_bytes(headers, end_stream=True) -> tuple[h2.connection.H2Connection, bytes]:
    c = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
    c.initiate_connection()
    c.send_headers(1, headers, end_stream=end_stream)
    return c, c.data_to_send()


REQ = [(":method", "GET"), (":path", "/a?q=1"), (":scheme", "http"), (":authority", "svc:8080")]


def test_corrupt_and_oversized_http2_frames():
    d = L7Dispatcher()
    key = conn(9000)
    _, data = _h2_client_bytes(REQ)
    out = feed(d, key, True, data)
    assert [r.summary for r in out] == ["HTTP/2 GET http://svc:8080/a"]
    # a 16 MB DATA frame (over the 16 KB default max): counted, skipped by count, never buffered
    huge = struct.pack(">I", (1 << 24) - 1)[1:] + bytes([0, 0]) + struct.pack(">I", 1)
    feed(d, key, True, huge + b"x" * 100, prefix=512)
    assert kinds(d) == {"oversized_frame": 1}
    for _ in range(50):
        feed(d, key, True, os.urandom(700))
    assert d.stats.errors_by_kind.get(("http2", "internal"), 0) == 0
    assert len(d._conns[key].client.buf) <= 16384


def test_hpack_bomb_is_stopped():
    config = L7Config()
    d = L7Dispatcher(config)
    key = conn(9000)
    enc = hpack.Encoder()
    enc.header_table_size = 4096
    big = ("x-bomb", "b" * 3000)
    block = enc.encode([*REQ, big]) + bytes([0x80 | 62]) * 400  # 400 more references to the 3 KB entry
    preface = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + b"\x00\x00\x00\x04\x00\x00\x00\x00\x00"
    frame = struct.pack(">I", len(block))[1:] + bytes([1, 0x5]) + struct.pack(">I", 1) + block
    out = feed(d, key, True, preface + frame, prefix=len(preface) + len(frame))
    assert kinds(d) == {"hpack_bomb": 1}
    assert [r.partial for r in out] == [True]


def test_http2_mid_connection_is_partial_not_guessed():
    client, data = _h2_client_bytes(REQ)
    client.send_headers(3, REQ, end_stream=True)  # the encoder now refers to entries of stream 1's block
    second = client.data_to_send()
    d = L7Dispatcher(L7Config(http2_ports=frozenset({9000})))
    out = feed(d, conn(9000), True, second)  # capture starts after the first block
    assert len(out) == 1 and out[0].partial and out[0].layer7.http.method == ""
    assert kinds(d) == {"hpack_error": 1}


def test_h2c_upgrade_hands_over_to_http2():
    d = L7Dispatcher()
    key = conn(8080)
    upgrade = (b"GET /up HTTP/1.1\r\nHost: svc\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\n"
               b"HTTP2-Settings: AAMAAABkAAQAAP__\r\n\r\n")
    assert [r.summary for r in feed(d, key, True, upgrade)] == ["HTTP/1.1 GET http://svc/up"]
    server = h2.connection.H2Connection(h2.config.H2Configuration(client_side=False))
    server.initiate_upgrade_connection(b"AAMAAABkAAQAAP__")
    server.send_headers(1, [(":status", "200"), ("content-length", "0")], end_stream=True)
    response = b"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n\r\n"
    out = feed(d, key, False, response + server.data_to_send(), ts=5_000_001)
    assert [(r.layer7.http.code, r.layer7.http.protocol, r.layer7.http.url) for r in out] == [
        (200, "HTTP/2", "http://svc/up")]
    client = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
    client.initiate_upgrade_connection()
    client.send_headers(3, REQ, end_stream=True)
    assert [r.summary for r in feed(d, key, True, client.data_to_send())] == ["HTTP/2 GET http://svc:8080/a"]
    assert not d.stats.parse_errors


def test_kafka_lengths_that_lie():
    d = L7Dispatcher()
    key = conn(9092)
    feed(d, key, True, struct.pack(">i", 0x7FFFFFFF) + b"\x00" * 20)  # 2 GB message
    feed(d, key, True, struct.pack(">i", -4) + b"\x00" * 20)  # negative: waits for a plausible start
    # a plausible header whose client_id claims 30000 bytes and whose topic array claims 2^31-1 entries
    body = struct.pack(">hhih", 0, 3, 7, 30000) + b"c" * 10
    feed(d, key, True, struct.pack(">i", len(body)) + body)
    body = struct.pack(">hhih", 0, 3, 8, 1) + b"c" + struct.pack(">hhi", -1, 1, 1000) + struct.pack(">i", 0x7FFFFFFF)
    out = feed(d, key, True, struct.pack(">i", len(body)) + body)
    assert d.stats.errors_by_kind[("kafka", "bad_length")] == 1
    assert d.stats.errors_by_kind[("kafka", "truncated")] == 1
    assert d.stats.errors_by_kind[("kafka", "malformed")] == 1
    assert out == []
    assert feed(d, key, False, struct.pack(">ii", 4, 99)) == []  # a response nobody asked for
    assert d.stats.errors_by_kind[("kafka", "response_without_request")] == 0  # waiting to resync: ignored


def test_connection_table_and_pending_are_bounded():
    d = L7Dispatcher(L7Config(max_connections=100, max_pending=8))
    for port in range(1000):
        feed(d, conn(8080, client_port=port), True, b"GET / HTTP/1.1\r\nHost: h\r\n\r\n")
    assert len(d) == 100 and d.stats.evicted_connections == 900
    key = conn(8080, client_port=5)
    for _ in range(50):
        feed(d, key, True, b"GET / HTTP/1.1\r\nHost: h\r\n\r\n")
    assert len(d._conns[key].pending) == 8 and kinds(d) == {"pending_overflow": 42}
    for port in range(1000):  # UDP to ports we do not parse takes no state at all
        feed(d, conn(5000 + port, UDP, port), True, b"x" * 20)
    assert len(d) == 100


def test_port_rules_per_namespace_and_pod():
    rules = (PortRule("http", frozenset({9999}), "shop"), PortRule("kafka", frozenset({9999}), "shop", "kafka-"))
    pods = {"10.0.0.2": ("shop", "web-1"), "10.0.0.3": ("shop", "kafka-0")}
    d = L7Dispatcher(L7Config(rules=rules), endpoint_of=pods.get)
    assert feed(d, conn(9999), True, b"GET / HTTP/1.1\r\nHost: h\r\n\r\n")[0].protocol == "http"
    kafka = ConnKey(socket.AF_INET, "10.0.0.1", 1, "10.0.0.3", 9999, TCP)
    body = struct.pack(">hhih", 18, 0, 1, 1) + b"c"
    assert feed(d, kafka, True, struct.pack(">i", len(body)) + body)[0].protocol == "kafka"
    assert L7Config(rules=rules).ports_for("http", "other", "x") == frozenset({80, 8080, 8000})


def test_fqdn_cache_ttl_and_bound():
    now = [0]
    cache = FqdnCache(max_ips=2, min_ttl_s=0, clock=lambda: now[0])
    cache.observe(flow_pb2.DNS(query="a.test.", ips=["1.1.1.1"], ttl=10))
    cache.observe(flow_pb2.DNS(query="b.test.", ips=["1.1.1.1", "2.2.2.2"], ttl=100, cnames=["c.test."]))
    assert cache.names_for_ip("1.1.1.1") == ["b.test", "c.test", "a.test"]
    now[0] = 11 * 10**9
    assert cache.names_for_ip("1.1.1.1") == ["b.test", "c.test"]
    cache.observe(flow_pb2.DNS(query="x.test.", ips=["3.3.3.3"], ttl=100))
    assert len(cache) == 2 and cache.names_for_ip("1.1.1.1") == []  # least recently learned IP evicted
    cache.observe(flow_pb2.DNS(query="nx.test.", rcode=3))
    now[0] = 200 * 10**9
    assert cache.names_for_ip("3.3.3.3") == []


def test_capture_starting_mid_connection_finds_the_next_message():
    d = L7Dispatcher()
    key = conn(8080)
    assert feed(d, key, False, b"...the end of some body\r\n") == []  # the server's first bytes we see
    assert feed(d, key, True, b"rest of a body we never saw the start of") == []
    out = feed(d, key, True, b"GET /n HTTP/1.1\r\nHost: h\r\n\r\n")
    out += feed(d, key, False, b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n")
    assert [r.summary.split(" (")[0] for r in out] == ["HTTP/1.1 GET http://h/n", "HTTP/1.1 404 0ms"]


def test_connect_and_websocket_upgrade_leave_the_connection_alone():
    d = L7Dispatcher()
    key = conn(8080)
    feed(d, key, True, b"CONNECT db:5432 HTTP/1.1\r\nHost: db:5432\r\n\r\n")
    out = feed(d, key, False, b"HTTP/1.1 200 Connection established\r\n\r\n")
    assert [(r.layer7.http.method, r.layer7.http.url, r.layer7.http.code) for r in out] == [("CONNECT", "db:5432", 200)]
    assert feed(d, key, True, b"\x00\x01binary tunnel bytes") == [] and not d.stats.parse_errors
    ws = conn(8080, client_port=40001)
    feed(d, ws, True, b"GET /chat HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n")
    assert [r.layer7.http.code for r in feed(d, ws, False, b"HTTP/1.1 101 Switching\r\nUpgrade: websocket\r\n\r\n")] == [101]
    assert feed(d, ws, False, b"\x81\x05hello") == [] and not d.stats.parse_errors


def test_query_and_header_privacy_follow_config():
    request = b"GET /p?token=s3cret HTTP/1.1\r\nHost: h\r\nAuthorization: Bearer x\r\nAccept: */*\r\n\r\n"
    default = feed(L7Dispatcher(), conn(8080), True, request)[0].layer7.http
    assert default.url == "http://h/p"
    assert {h.key: h.value for h in default.headers} == {"host": "HUBBLE_REDACTED", "authorization": "HUBBLE_REDACTED",
                                                         "accept": "HUBBLE_REDACTED"}
    config = L7Config(allow_url_query=True, header_allow=frozenset({"accept"}))
    allowed = feed(L7Dispatcher(config), conn(8080), True, request)[0].layer7.http
    assert allowed.url == "http://h/p?token=s3cret"
    assert {h.key: h.value for h in allowed.headers}["accept"] == "*/*"


def test_server_push_keeps_the_hpack_table_in_step():
    client, data = _h2_client_bytes(REQ)
    server = h2.connection.H2Connection(h2.config.H2Configuration(client_side=False))
    server.initiate_connection()
    server.receive_data(data)
    pushed = [(":method", "GET"), (":path", "/style.css"), (":scheme", "http"), (":authority", "svc:8080"),
              ("x-pushed", "yes")]
    server.push_stream(1, 2, pushed)
    server.send_headers(1, [(":status", "200"), ("x-pushed", "yes")], end_stream=True)  # refers to the push's entry
    d = L7Dispatcher()
    key = conn(9000)
    feed(d, key, True, data)
    out = feed(d, key, False, server.data_to_send(), prefix=4096)
    assert [(r.layer7.http.code, r.partial) for r in out] == [(200, False)] and not d.stats.parse_errors


def test_dns_answer_longer_than_the_prefix_is_partial():
    query = dns.message.make_query("many.test.", "A")
    answer = dns.message.make_response(query)
    answer.answer.append(dns.rrset.from_text("many.test.", 60, "IN", "A", *[f"10.0.{i}.1" for i in range(60)]))
    wire = answer.to_wire()
    assert len(wire) > 512
    d = L7Dispatcher()
    out = feed(d, conn(53, UDP), False, wire)
    assert [(r.partial, r.layer7.dns.query, r.layer7.dns.rcode) for r in out] == [(True, "many.test.", 0)]
    assert d.fqdn.names_for_ip("10.0.0.1") == []  # no address was seen, none is learned


def test_kafka_topic_ids_resolve_through_metadata():
    """Fetch v13+ names topics by id only (Kafka 3.1+ clients); the id is learned from a Metadata v10+
    answer on another connection. Bytes made by kafka-python's protocol classes (its client stops at
    Fetch v12, so the capture tests cannot show this)."""
    def framed(message, correlation_id):
        message.with_header(correlation_id=correlation_id, client_id="modern")
        return message.encode(header=True, framed=True)

    tid = uuid.uuid4()
    d = L7Dispatcher()
    bootstrap, node = conn(9092, client_port=1), conn(9092, client_port=2)
    feed(d, bootstrap, True, framed(MetadataRequest(version=12, topics=None, allow_auto_topic_creation=False,
                                                    include_topic_authorized_operations=False), 1))
    partition = MetadataResponse.MetadataResponseTopic.MetadataResponsePartition(
        error_code=0, partition_index=0, leader_id=0, leader_epoch=0, replica_nodes=[0, 1], isr_nodes=[0],
        offline_replicas=[])
    topics = [MetadataResponse.MetadataResponseTopic(error_code=0, name=name, topic_id=topic_id, is_internal=False,
                                                     partitions=[partition])
              for name, topic_id in (("audit", uuid.uuid4()), ("orders", tid))]
    broker = MetadataResponse.MetadataResponseBroker(node_id=0, host="kafka-0", port=9092, rack=None)
    out = feed(d, bootstrap, False, framed(MetadataResponse(version=12, throttle_time_ms=0, brokers=[broker],
                                                            cluster_id="c", controller_id=0, topics=topics), 1),
               prefix=4096)
    assert [(r.layer7.kafka.api_key, r.layer7.kafka.topic) for r in out] == [("metadata", "audit")]
    fetch_partition = FetchRequest.FetchTopic.FetchPartition(partition=0, current_leader_epoch=-1, fetch_offset=0,
                                                             last_fetched_epoch=-1, log_start_offset=-1,
                                                             partition_max_bytes=1 << 20)
    request = FetchRequest(version=13, replica_id=-1, max_wait_ms=100, min_bytes=1, max_bytes=1 << 20,
                           isolation_level=0, session_id=0, session_epoch=-1, rack_id="",
                           topics=[FetchRequest.FetchTopic(topic_id=tid, partitions=[fetch_partition])],
                           forgotten_topics_data=[])
    out = feed(d, node, True, framed(request, 7))
    data = FetchResponse.FetchableTopicResponse.PartitionData(
        partition_index=0, error_code=1, high_watermark=0, last_stable_offset=0, log_start_offset=0,
        aborted_transactions=[], preferred_read_replica=-1, records=b"")
    response = FetchResponse(version=13, throttle_time_ms=0, error_code=0, session_id=0,
                             responses=[FetchResponse.FetchableTopicResponse(topic_id=tid, partitions=[data])])
    out += feed(d, node, False, framed(response, 7))
    assert [(r.layer7.kafka.api_key, r.layer7.kafka.api_version, r.layer7.kafka.topic, r.layer7.kafka.error_code)
            for r in out] == [("fetch", 13, "orders", 0), ("fetch", 13, "orders", 1)]
    assert not d.stats.parse_errors
