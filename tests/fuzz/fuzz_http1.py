"""Fuzz the HTTP/1 parser (collector/l7/http1.py), prefix capture and resync, h2c upgrades included."""

import atheris

with atheris.instrument_imports(include=["collector.l7"]):
    from collector.l7.http1 import HeadCache, Http1Parser
    from collector.l7.types import L7Config, L7ParseError, L7Stats

from tests.fuzz.engine import conversation, feed, run

CONFIG = L7Config(max_header_bytes=4096)
CACHE = HeadCache()   # shared across inputs like a dispatcher's: its reuse paths are fuzzed too
SEEDS = [
    conversation([(True, b"GET /a?b=1 HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\n\r\nabc"),
                  (False, b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")]),
    conversation([(True, b"POST /c HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n"),
                  (False, b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 204 No Content\r\n\r\n")]),
    conversation([(True, b"GET / HTTP/1.1\r\nHost: h\r\nUpgrade: h2c\r\nConnection: Upgrade, HTTP2-Settings\r\n"
                         b"HTTP2-Settings: AAMAAABkAAQAAP__\r\n\r\n"),
                  (False, b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: h2c\r\n\r\n"
                          b"\x00\x00\x00\x04\x00\x00\x00\x00\x00")]),
]


def one_input(data: bytes) -> None:
    synced = bool(data[:1]) and data[0] & 1 == 0
    feed(Http1Parser(CONFIG, L7Stats(), "10.0.0.2:80", synced=synced, cache=CACHE), data[1:], L7ParseError)


def main() -> None:
    run(one_input, [b"\x00" + s for s in SEEDS])


if __name__ == "__main__":
    main()
