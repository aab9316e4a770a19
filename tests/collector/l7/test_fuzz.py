"""Fuzz every parser through the dispatcher: random bytes, and valid messages mutated and cut at
random points, in random segment sizes and prefix lengths. Nothing may raise, no parser may hit an
unexpected exception (kind "internal"), and buffers stay within the configured bounds."""

from __future__ import annotations

import socket
import struct

import dns.message
import h2.config
import h2.connection
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from collector.l7 import ConnKey, L7Config, L7Dispatcher

CONFIG = L7Config(max_header_bytes=4096, http2_ports=frozenset({9000}))
FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _h2_sample() -> bytes:
    c = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
    c.initiate_connection()
    for sid in (1, 3):
        c.send_headers(sid, [(":method", "POST"), (":path", "/pkg.Svc/Call"), (":scheme", "http"),
                             (":authority", "svc"), ("content-type", "application/grpc")])
        c.send_data(sid, b"\x00\x00\x00\x00\x02hi", end_stream=True)
    return c.data_to_send()


def _kafka_sample() -> bytes:
    body = struct.pack(">hhih", 0, 8, 5, 3) + b"cli" + struct.pack(">hhi", -1, 1, 1000) + struct.pack(">i", 1)
    body += struct.pack(">h", 6) + b"events" + b"\x00" * 30
    return struct.pack(">i", len(body)) + body


SAMPLES = {
    8080: b"GET /a?b=1 HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\n\r\nabc"
          b"POST /c HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
    53: dns.message.make_query("fuzz.test.", "AAAA").to_wire(),
    9000: _h2_sample(),
    9092: _kafka_sample(),
}
RESPONSES = {
    8080: b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nokHTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 204 No\r\n\r\n",
    53: dns.message.make_response(dns.message.make_query("fuzz.test.", "A")).to_wire(),
    9000: b"\x00\x00\x00\x04\x00\x00\x00\x00\x00\x00\x00\x05\x01\x05\x00\x00\x00\x01\x88\x40\x82\x94\xe7",
    9092: struct.pack(">ii", 10, 5) + b"\x00" * 6,
}


def _check(d: L7Dispatcher) -> None:
    assert not any(kind == "internal" for _, kind in d.stats.errors_by_kind), d.stats.errors_by_kind
    for parser in d._conns.values():
        for side in ("client", "server"):
            buf = getattr(getattr(parser, side, None), "buf", b"")
            assert len(buf) <= CONFIG.max_header_bytes + 64


def _segments(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts}) + [len(data)]
    out, start = [], 0
    for p in points:
        if p > start:
            out.append(data[start:p])
            start = p
    return out


@FUZZ
@given(port=st.sampled_from(sorted(SAMPLES)), udp=st.booleans(), chunks=st.lists(st.binary(max_size=600), max_size=8),
       prefix=st.integers(0, 600))
def test_random_bytes(port, udp, chunks, prefix):
    d = L7Dispatcher(CONFIG)
    key = ConnKey(socket.AF_INET, "10.0.0.1", 1234, "10.0.0.2", port,
                  socket.IPPROTO_UDP if udp and port == 53 else socket.IPPROTO_TCP)
    for i, chunk in enumerate(chunks):
        d.on_segment(key, i % 3 != 2, chunk[:prefix], len(chunk) + (i * 97) % 300, i)
    _check(d)


@FUZZ
@given(port=st.sampled_from(sorted(SAMPLES)), data=st.data(), prefix=st.integers(1, 600))
def test_mutated_messages(port, data, prefix):
    request = bytearray(SAMPLES[port] * 2)
    response = bytearray(RESPONSES[port] * 2)
    for buf in (request, response):
        for _ in range(data.draw(st.integers(0, 6))):
            buf[data.draw(st.integers(0, len(buf) - 1))] = data.draw(st.integers(0, 255))
    cuts = data.draw(st.lists(st.integers(0, 2000), max_size=6))
    d = L7Dispatcher(CONFIG)
    proto = socket.IPPROTO_UDP if port == 53 and data.draw(st.booleans()) else socket.IPPROTO_TCP
    key = ConnKey(socket.AF_INET6, "fd00::1", 1234, "fd00::2", port, proto)
    if port == 53 and proto == socket.IPPROTO_TCP:
        request = struct.pack(">H", len(request)) + request
        response = struct.pack(">H", len(response)) + response
    for i, seg in enumerate(_segments(bytes(request), cuts)):
        d.on_segment(key, True, seg[:prefix], len(seg), i)
    for i, seg in enumerate(_segments(bytes(response), cuts)):
        d.on_segment(key, False, seg[:prefix], len(seg), 100 + i)
    _check(d)
