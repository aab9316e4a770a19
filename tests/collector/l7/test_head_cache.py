"""Repeated HTTP/1 heads are parsed once per dispatcher (HeadCache): the records must be exactly those a
fresh parser makes, per connection — its own URL, host, latency and pending requests."""

from __future__ import annotations

import socket

from collector.l7 import ConnKey, L7Config, L7Dispatcher
from collector.l7.http1 import HeadCache, Http1Parser
from collector.l7.types import L7Stats
from proto.flow import flow_pb2

REQUEST = b"GET /a?q=1 HTTP/1.1\r\nHost: shop:8080\r\nUser-Agent: t\r\nX-Token: s3cret\r\n\r\n"
NO_HOST = b"GET /a HTTP/1.1\r\nAccept: */*\r\n\r\n"
RESPONSE = b"HTTP/1.1 404 Not Found\r\nContent-Length: 4\r\nServer: x\r\n\r\nnope"


def conn(server: str, client_port: int) -> ConnKey:
    return ConnKey(socket.AF_INET, "10.0.0.1", client_port, server, 8080, socket.IPPROTO_TCP)


def exchange(d: L7Dispatcher, key: ConnKey, request: bytes, t0: int, t1: int) -> list:
    return d.on_segment(key, True, request, len(request), t0) + d.on_segment(key, False, RESPONSE, len(RESPONSE), t1)


def uncached(request: bytes, server_host: str, t0: int, t1: int, config: L7Config = L7Config()) -> list:
    parser = Http1Parser(config, L7Stats(), server_host, cache=HeadCache(limit=0))
    return parser.feed(True, request, len(request), t0) + parser.feed(False, RESPONSE, len(RESPONSE), t1)


def shape(records: list) -> list:
    return [(r.layer7.SerializeToString(deterministic=True), r.is_reply, r.summary, r.partial, r.protocol)
            for r in records]


def test_repeated_heads_give_the_records_of_a_fresh_parser():
    d = L7Dispatcher()
    runs = [(conn("10.0.0.2", 40000 + i), REQUEST, 1_000 * i, 1_000 * i + 7_000_000 * (i + 1)) for i in range(3)]
    runs += [(conn("10.0.0.3", 41000), NO_HOST, 5, 9_000_005), (conn("10.0.0.2", 41001), NO_HOST, 5, 2_000_005)]
    for key, request, t0, t1 in runs:
        got = exchange(d, key, request, t0, t1)
        assert shape(got) == shape(uncached(request, f"{key.server_ip}:8080", t0, t1))
    assert d.stats.records["http"] == 2 * len(runs) and not d.stats.parse_errors
    urls = [r.layer7.http.url for r in exchange(d, conn("10.0.0.3", 41002), NO_HOST, 1, 2)]
    assert urls == ["http://10.0.0.3:8080/a", "http://10.0.0.3:8080/a"]  # the host of the connection's server


def test_cached_records_keep_redaction_and_latency():
    [request, response] = exchange(L7Dispatcher(), conn("10.0.0.2", 40000), REQUEST, 1_000, 3_001_000)
    [again, response2] = exchange(L7Dispatcher(), conn("10.0.0.2", 40000), REQUEST, 1_000, 5_001_000)
    assert request.layer7.http.url == "http://shop:8080/a"
    assert {h.key: h.value for h in request.layer7.http.headers}["x-token"] == "HUBBLE_REDACTED"
    assert (response.layer7.latency_ns, response2.layer7.latency_ns) == (3_000_000, 5_000_000)
    http = response.layer7.http
    assert (http.code, http.method, response.layer7.type) == (404, "GET", flow_pb2.RESPONSE)
    assert response2.summary == "HTTP/1.1 404 5ms (GET http://shop:8080/a)"


def test_pipelined_repeats_on_one_connection_match_in_order():
    d = L7Dispatcher()
    key = conn("10.0.0.2", 40000)
    burst = b"".join(REQUEST.replace(b"/a", f"/{i}".encode()) for i in (1, 2, 1, 2))
    requests = d.on_segment(key, True, burst, len(burst), 10)
    responses = d.on_segment(key, False, RESPONSE * 4, 4 * len(RESPONSE), 20)
    assert [r.layer7.http.url for r in requests] == [f"http://shop:8080/{i}" for i in (1, 2, 1, 2)]
    assert [r.layer7.http.url for r in responses] == [r.layer7.http.url for r in requests]
    assert all(r.layer7.latency_ns == 10 for r in responses)


def test_known_heads_with_bodies_split_or_absent_stay_in_step():
    d = L7Dispatcher()
    key = conn("10.0.0.2", 40000)
    post = b"POST /p HTTP/1.1\r\nHost: shop\r\nContent-Length: 5\r\n\r\nhello"
    head_only = b"HEAD /h HTTP/1.1\r\nHost: shop\r\n\r\n"
    seen = []
    for _ in range(2):  # the second round finds every head in the cache
        seen += d.on_segment(key, True, post, len(post), 1)
        seen += d.on_segment(key, False, RESPONSE, len(RESPONSE), 2)
        seen += d.on_segment(key, True, post[:-3], len(post) - 3, 3)  # body continues in the next segment
        seen += d.on_segment(key, True, post[-3:] + head_only, 3 + len(head_only), 4)
        seen += d.on_segment(key, False, RESPONSE[:-2], len(RESPONSE) - 2, 5)
        seen += d.on_segment(key, False, RESPONSE[-2:], 2, 6)
        no_body = RESPONSE[:-4]  # a HEAD response: Content-Length but no body
        seen += d.on_segment(key, False, no_body, len(no_body), 7)
    assert [(r.layer7.type, r.layer7.http.method, r.layer7.http.url) for r in seen] == 2 * [
        (flow_pb2.REQUEST, "POST", "http://shop/p"), (flow_pb2.RESPONSE, "POST", "http://shop/p"),
        (flow_pb2.REQUEST, "POST", "http://shop/p"), (flow_pb2.REQUEST, "HEAD", "http://shop/h"),
        (flow_pb2.RESPONSE, "POST", "http://shop/p"), (flow_pb2.RESPONSE, "HEAD", "http://shop/h")]
    assert not d.stats.parse_errors


def test_large_heads_are_parsed_but_not_kept():
    d = L7Dispatcher()
    big = REQUEST.replace(b"User-Agent: t", b"Cookie: " + b"c" * 4000)
    for port in (40000, 40001):
        [record] = d.on_segment(conn("10.0.0.2", port), True, big, len(big), 1)
        assert record.layer7.http.url == "http://shop:8080/a"
    cache = d.http_heads
    assert not cache.heads and not cache.requests


def test_response_records_built_as_bytes_are_the_messages_response_record_builds():
    from collector.l7.http1 import header_fields
    from collector.l7.httprecord import response_record

    config = L7Config(header_allow=frozenset({"server"}))
    d = L7Dispatcher(config)
    responses = [RESPONSE, b"HTTP/1.1 200 OK\r\nServer: nginx\r\nContent-Length: 0\r\n\r\n",
                 b"HTTP/1.0 500 Internal Server Error\r\nContent-Length: 0\r\nX-\xe9: \xff\r\n\r\n"]
    for i, (response, latency) in enumerate((r, t) for r in responses for t in (0, 5_000_000, 10**10, 10**12)):
        key = conn("10.0.0.2", 40000 + i)
        request = REQUEST.replace(b"/a", f"/r{i}".encode())
        d.on_segment(key, True, request, len(request), 100)
        [record] = d.on_segment(key, False, response, len(response), 100 + latency)
        lines = response.split(b"\r\n\r\n")[0].split(b"\r\n")
        expected = response_record(config, "HTTP/1.1", int(lines[0].split()[1]), "GET", f"http://shop:8080/r{i}",
                                   latency, header_fields(lines[1:]), False, "http")
        assert (record.layer7, record.summary, record.is_reply, record.partial) == (
            expected.layer7, expected.summary, True, False)
        assert flow_pb2.Layer7.FromString(record.layer7_bytes()) == expected.layer7
