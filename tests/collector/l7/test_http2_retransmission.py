"""A TCP retransmission reaches the HTTP/2 parser as a second copy of a segment: the TC hook sees every
copy. Replayed from a real grpcio connection captured by the datapath (tests/collector/datapath's gRPC lab
run): the server's trailers of a call came again 5 ms later, resent by the kernel's tail loss probe while
the client delayed its ACK (tshark marks such a copy [TCP Retransmission]), and the parser made a
method-less "HTTP/2 0" response of them."""

from __future__ import annotations

import collections
import json
import pathlib
import socket

import h2.config
import h2.connection

from collector.l7 import ConnKey, L7Config, L7Dispatcher, grpc_call, grpc_status

CAPTURE = pathlib.Path(__file__).parent / "data" / "grpc_teardown_retransmission.jsonl"
# The calls grpc_demo.py's client had made on this connection when the copy came (the first 23 of its plan).
CLIENT = {("Say", 0): 12, ("Say", 5): 5, ("Stream", 0): 4, ("Stream", 3): 2}
KEY = ConnKey(socket.AF_INET, "10.244.0.4", 40564, "10.244.0.5", 50051, socket.IPPROTO_TCP)


def segments() -> list[tuple[bool, bytes, int, int]]:
    return [(from_client, bytes.fromhex(data), length, ts)
            for from_client, data, length, ts in map(json.loads, CAPTURE.read_text().splitlines())]


def replay(d: L7Dispatcher, captured) -> list:
    return [r for from_client, data, length, ts in captured for r in d.on_segment(KEY, from_client, data, length, ts)]


def test_the_captured_connection_ends_with_a_retransmitted_segment():
    """The fixture is what it claims: its last segment repeats the one before it, 5 ms later."""
    captured = segments()
    (_c1, last_but_one, _l1, ts1), (_c2, last, _l2, ts2) = captured[-2:]
    assert last == last_but_one and b"grpc-message" in last and 4_000_000 < ts2 - ts1 < 10_000_000


def test_a_retransmitted_trailer_makes_no_method_less_record():
    d = L7Dispatcher()
    records = replay(d, segments())
    responses = [r for r in records if r.is_reply]
    assert all(r.layer7.http.method == "POST" and r.layer7.http.code == 200 for r in responses)
    seen = collections.Counter((grpc_call(r.layer7.http)[1], grpc_status(r.layer7.http)) for r in responses)
    assert seen == CLIENT
    assert len(records) == 2 * sum(CLIENT.values()) and not any(r.partial for r in records)
    assert d.stats.parse_errors["http2"] == 0, d.stats.errors_by_kind


def test_the_same_connection_without_the_copy_gives_the_same_records():
    with_copy, without = replay(L7Dispatcher(), segments()), replay(L7Dispatcher(), segments()[:-1])
    assert [r.summary for r in with_copy] == [r.summary for r in without]


def _connect() -> tuple[h2.connection.H2Connection, h2.connection.H2Connection, bytes, bytes]:
    """A client and a server past their prefaces and SETTINGS, and those bytes (client's, server's)."""
    client = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
    server = h2.connection.H2Connection(h2.config.H2Configuration(client_side=False))
    client.initiate_connection()
    server.initiate_connection()
    preface = client.data_to_send()
    server.receive_data(preface)
    settings = server.data_to_send()
    client.receive_data(settings)
    ack = client.data_to_send()
    server.receive_data(ack)
    return client, server, preface + ack, settings + server.data_to_send()


def request(client, server, sid: int, path: str) -> bytes:
    client.send_headers(sid, [(":method", "GET"), (":path", path), (":scheme", "http"), (":authority", "svc:9000")],
                        end_stream=True)
    data = client.data_to_send()
    server.receive_data(data)
    return data


def feed(d: L7Dispatcher, segments: list[tuple[bool, bytes]]) -> list:
    return [r for from_client, data in segments for r in d.on_segment(KEY, from_client, data, len(data), 1)]


def test_a_retransmitted_block_is_not_decoded_twice():
    """Both copies of blocks whose literals enter the HPACK table: decoding a copy again would shift the
    table, and the next call's references would name the wrong headers (or fail to decode: partial)."""
    client, server, client_start, server_start = _connect()
    first = request(client, server, 1, "/first")
    server.send_headers(1, [(":status", "201"), ("x-served-by", "a")], end_stream=True)
    first_response = server.data_to_send()
    second = request(client, server, 3, "/second")  # refers to the first's entries
    server.send_headers(3, [(":status", "201"), ("x-served-by", "a")], end_stream=True)
    second_response = server.data_to_send()
    d = L7Dispatcher(L7Config(header_allow=frozenset({"x-served-by"})))
    out = feed(d, [(True, client_start), (False, server_start), (True, first), (True, first),
                   (False, first_response), (False, first_response), (True, second), (False, second_response),
                   (False, second_response)])
    assert [r.summary for r in out] == ["HTTP/2 GET http://svc:9000/first",
                                        "HTTP/2 201 0ms (GET http://svc:9000/first)",
                                        "HTTP/2 GET http://svc:9000/second",
                                        "HTTP/2 201 0ms (GET http://svc:9000/second)"]
    assert {h.key: h.value for h in out[3].layer7.http.headers}["x-served-by"] == "a"
    assert not any(r.partial for r in out) and not d.stats.parse_errors


def test_trailers_after_a_recorded_response_keep_the_table_and_make_no_record():
    """A plain HTTP/2 response is recorded at its headers; trailers that follow are decoded (their literal
    enters the table) but make no second, method-less response."""
    client, server, client_start, server_start = _connect()
    requests = request(client, server, 1, "/one") + request(client, server, 3, "/two")
    server.send_headers(1, [(":status", "200")])
    server.send_data(1, b"body")
    server.send_headers(1, [("x-checksum", "abc")], end_stream=True)  # trailers: a literal with indexing
    server.send_headers(3, [(":status", "200"), ("x-checksum", "abc")], end_stream=True)  # refers to it
    d = L7Dispatcher(L7Config(header_allow=frozenset({"x-checksum"})))
    out = feed(d, [(True, client_start + requests), (False, server_start + server.data_to_send())])
    responses = [r for r in out if r.is_reply]
    assert [(r.layer7.http.url, r.layer7.http.code) for r in responses] == [
        ("http://svc:9000/one", 200), ("http://svc:9000/two", 200)]
    assert {h.key: h.value for h in responses[1].layer7.http.headers}["x-checksum"] == "abc"
    assert not d.stats.parse_errors
