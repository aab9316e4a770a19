"""HTTP/1.0 and 1.1 over one TCP connection, seen as payload prefixes of its segments.

Each direction is a small state machine over the byte stream. Bodies are skipped by count (the
segment's full length, not just the bytes we saw), so a 512-byte prefix of a 64 KB segment still
keeps us in step. When bytes we must read (a head, a chunk-size line) fall in the unseen part of a
segment we lose sync, count it, and wait for a segment that starts like a message again. Responses
match requests first-in first-out (keep-alive and pipelining). Upgrade and CONNECT hand the
connection over (h2c to the HTTP/2 parser; anything else is left alone).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

from proto.flow import flow_pb2
from proto.wire import string_field, tag, varint

from .httprecord import build_url, header_messages, request_record, response_record
from .stream import consume, unseen_bytes
from .types import L7Config, L7Record, L7Stats

METHODS = frozenset({
    b"GET", b"HEAD", b"POST", b"PUT", b"DELETE", b"CONNECT", b"OPTIONS", b"TRACE", b"PATCH",
    b"PROPFIND", b"PROPPATCH", b"MKCOL", b"COPY", b"MOVE", b"LOCK", b"UNLOCK", b"PURGE",
})
_METHOD_PREFIXES = tuple(m + b" " for m in METHODS)

# Per-direction states.
START, BODY, CHUNK_SIZE, CHUNK_DATA, TRAILERS, UNTIL_CLOSE, RESYNC, DONE = range(8)
_MAX_LINE = 1024  # chunk-size and trailer lines are short; longer means garbage


def looks_like_request(payload: bytes) -> bool:
    return payload.startswith(_METHOD_PREFIXES)


def looks_like_response(payload: bytes) -> bool:
    return payload.startswith((b"HTTP/1.1 ", b"HTTP/1.0 "))


@dataclass(slots=True)
class _Pending:
    method: str
    url: str
    protocol: str
    ts_ns: int
    upgrade: str  # lower-case Upgrade header of the request ("" if none)
    http_fields: bytes  # method, url and protocol as fields of a serialized flow.HTTP


def _http_fields(method: str, url: str, protocol: str) -> bytes:
    return b"".join((string_field(_METHOD, method.encode()), string_field(_URL, url.encode()),
                     string_field(_PROTOCOL, protocol.encode())))


_METHOD, _URL, _PROTOCOL = (tag(flow_pb2.HTTP, name) for name in ("method", "url", "protocol"))
_RESPONSE = tag(flow_pb2.Layer7, "type") + varint(flow_pb2.RESPONSE)
_LATENCY, _HTTP = tag(flow_pb2.Layer7, "latency_ns"), tag(flow_pb2.Layer7, "http")


class _Direction:
    __slots__ = ("is_client", "state", "buf", "remaining")

    def __init__(self, is_client: bool, state: int) -> None:
        self.is_client = is_client
        self.state = state
        self.buf = bytearray()
        self.remaining = 0


def header_fields(lines: list[bytes]) -> list[tuple[str, str]]:
    """(lower-case name, value) of each header line; lines without a colon are ignored."""
    headers = []
    for line in lines:
        name, sep, value = line.partition(b":")
        if sep:
            headers.append((name.strip().lower().decode("latin-1"), value.strip().decode("latin-1")))
    return headers


def _body_length(fields: dict[str, str], is_response: bool) -> int:
    """Body bytes of a message framed by Content-Length (a request without one has none); -1 for any
    other framing (chunked, until close) or an unusable length."""
    if "chunked" in fields.get("transfer-encoding", "").lower():
        return -1
    length = fields.get("content-length")
    if length is None:
        return -1 if is_response else 0
    try:
        return max(int(length.split(",")[0]), -1)
    except ValueError:
        return -1


class HeadCache:
    """Complete message heads already parsed, by their bytes, shared by a dispatcher's connections.

    Clients repeat their requests' heads and servers their responses' (a response head changes with
    its Date, once a second), and splitting and decoding header lines is most of what parsing a
    message costs. Entries are read-only: a cached request's record (its Layer7 serialized once) is the
    record of every repeat of that head to that server.
    """

    __slots__ = ("limit", "max_head", "heads", "requests", "responses")

    def __init__(self, limit: int = 2048, max_head: int = 2048) -> None:
        self.limit = limit  # entries per table: memory stays below ~3 x limit x max_head bytes
        self.max_head = max_head  # larger heads (big cookies, hostile input) are parsed every time
        self.heads: dict[bytes, tuple[bytes, list[tuple[str, str]], dict[str, str]]] = {}
        # (head, server host) -> (record, pending request, headers as a dict, body length or -1)
        self.requests: dict[tuple[bytes, str], tuple] = {}
        # head -> (HTTP with code and headers serialized, code, body length or -1 if the head alone cannot tell)
        self.responses: dict[bytes, tuple[bytes, int, int]] = {}

    def head(self, raw: bytes) -> tuple[bytes, list[tuple[str, str]], dict[str, str]]:
        """(start line, headers, headers as a dict) of a complete head."""
        found = self.heads.get(raw)
        if found is None:
            lines = raw.split(b"\r\n")
            headers = header_fields(lines[1:])
            found = (lines[0], headers, dict(headers))
            self.remember(self.heads, raw, raw, found)
        return found

    def remember(self, table: dict, head: bytes, key, value):
        """Stores `value` under `key` (made from `head`) unless the head is too large to keep."""
        if len(head) <= self.max_head:
            if len(table) >= self.limit:
                table.clear()
            table[key] = value
        return value


class Http1Parser:
    """One connection's HTTP/1 parser. `feed` returns the records completed by a segment;
    after an h2c upgrade `replacement` holds the HTTP/2 parser that takes over. `cache` (a HeadCache)
    is best shared by all connections of a dispatcher."""

    protocol = "http"

    def __init__(self, config: L7Config, stats: L7Stats, server_host: str, synced: bool = True,
                 cache: HeadCache | None = None, scheme: str = "http") -> None:
        """`scheme` of the URLs: "https" for bytes read inside TLS (the request line has none)."""
        self.config = config
        self.scheme = scheme
        self.stats = stats
        self.cache = cache if cache is not None else HeadCache()
        self.server_host = server_host  # "ip:port" for requests without a Host header
        first = START if synced else RESYNC
        self.client = _Direction(True, first)
        self.server = _Direction(False, first)
        self.pending: deque[_Pending] = deque()
        self.replacement = None
        self.leftover: tuple[bytes, int] | None = None  # server bytes after "101 Switching Protocols"

    # -- stream handling ---------------------------------------------------------------------------
    def feed(self, from_client: bool, payload: bytes, segment_len: int, ts_ns: int) -> list[L7Record]:
        d = self.client if from_client else self.server
        if d.state == START and not d.buf and segment_len == len(payload):
            # The common case: one whole message in one segment, its head seen before.
            end = payload.find(b"\r\n\r\n") + 4
            if end >= 4:
                fast = self._whole_request(payload, end, ts_ns) if from_client else \
                    self._whole_response(payload, end, ts_ns)
                if fast is not None:
                    return fast
        out: list[L7Record] = []
        n = len(payload)
        missing = unseen_bytes(payload, segment_len)
        if d.state == DONE:
            return out
        if d.state == RESYNC:
            if not (looks_like_request(payload) if d.is_client else looks_like_response(payload)):
                return out
            d.state = START
            d.buf.clear()
        pos = 0
        while True:
            state = d.state
            if state == BODY or state == CHUNK_DATA:
                pos, d.remaining, missing, _ = consume(d.remaining, pos, n, missing)
                if d.remaining:
                    return out
                d.state = START if state == BODY else CHUNK_SIZE
                if pos >= n and missing:
                    return self._lost(d, out, "lost_sync", ts_ns)
                continue
            if state == UNTIL_CLOSE or state == DONE or state == RESYNC:
                return out
            if pos >= n:
                if missing:
                    return self._lost(d, out, "truncated", ts_ns)
                return out
            if state == START:
                pos = self._head(d, payload, pos, ts_ns, out)
                if pos < 0:
                    return self._more(d, out, missing, ts_ns)
                if d.state == DONE and self.replacement is not None and pos < n + missing:
                    self.leftover = (payload[pos:], n + missing - pos)  # the new protocol's first bytes
                    return out
            elif state == CHUNK_SIZE:
                pos = self._chunk_size(d, payload, pos)
                if pos < 0:
                    return self._more(d, out, missing, ts_ns)
            elif state == TRAILERS:
                pos = self._trailers(d, payload, pos)
                if pos < 0:
                    return self._more(d, out, missing, ts_ns)

    def _more(self, d: _Direction, out: list[L7Record], missing: int, ts_ns: int) -> list[L7Record]:
        """A step needs more bytes: fine at the end of a segment, lost sync if this segment had unseen bytes."""
        if missing and d.state not in (RESYNC, DONE):
            return self._lost(d, out, "truncated", ts_ns)
        return out

    def _lost(self, d: _Direction, out: list[L7Record], kind: str, ts_ns: int) -> list[L7Record]:
        """Bytes we needed were not in the prefix: count it and wait for a segment that starts a message.
        A head cut short still yields a partial record from its start line and complete header lines."""
        self.stats.error(self.protocol, kind)
        if d.state == START and b"\r\n" in d.buf:
            lines = bytes(d.buf).split(b"\r\n")[:-1]
            d.buf.clear()
            self._message(d, lines, ts_ns, out, partial=True)
        if d.state != DONE:
            d.state = RESYNC
        d.buf.clear()
        return out

    def _line_until(self, d: _Direction, payload: bytes, pos: int, sep: bytes,
                    cap: int) -> tuple[bytes | None, int]:
        """Bytes up to and including `sep`, joining a part kept from earlier segments; (None, -1) when
        the rest of the payload was buffered and more is needed."""
        if d.buf:
            start = max(len(d.buf) - len(sep) + 1, 0)
            d.buf += payload[pos:]
            end = d.buf.find(sep, start)
            if end < 0:
                if len(d.buf) > cap:
                    self.stats.error(self.protocol, "header_too_large")
                    d.state = RESYNC
                    d.buf.clear()
                return None, -1
            end += len(sep)
            consumed = end - (len(d.buf) - (len(payload) - pos))
            line = bytes(d.buf[:end])
            d.buf.clear()
            return line, pos + consumed
        end = payload.find(sep, pos)
        if end < 0:
            if len(payload) - pos > cap:
                self.stats.error(self.protocol, "header_too_large")
                d.state = RESYNC
                return None, -1
            d.buf += payload[pos:]
            return None, -1
        end += len(sep)
        return payload[pos:end], end

    # -- message heads -------------------------------------------------------------------------------
    def _head(self, d: _Direction, payload: bytes, pos: int, ts_ns: int, out: list[L7Record]) -> int:
        if not d.buf:  # blank lines between messages are allowed (RFC 9112 2.2)
            while payload.startswith(b"\r\n", pos):
                pos += 2
            if pos >= len(payload):
                return pos
            if not (looks_like_request(payload[pos:pos + 16]) if d.is_client
                    else looks_like_response(payload[pos:pos + 16])):
                if not (len(payload) - pos < 16 and self._could_start(d, payload[pos:])):
                    self.stats.error(self.protocol, "not_http")
                    d.state = RESYNC
                    return -1
        head, pos = self._line_until(d, payload, pos, b"\r\n\r\n", self.config.max_header_bytes)
        if head is None:
            return -1
        if d.is_client:
            self._cached_request(d, head, ts_ns, out)
        else:
            self._cached_response(d, head, ts_ns, out)
        return pos if d.state != RESYNC else -1

    def _whole_request(self, payload: bytes, end: int, ts_ns: int) -> list[L7Record] | None:
        """A segment that is exactly a known request head and its whole body; None: take the long way."""
        found = self.cache.requests.get((payload[:end], self.server_host))
        if found is None or found[3] != len(payload) - end:
            return None
        record, pending = found[0], found[1]
        self._queue(_Pending(pending.method, pending.url, pending.protocol, ts_ns, pending.upgrade,
                             pending.http_fields))
        return [record]

    def _whole_response(self, payload: bytes, end: int, ts_ns: int) -> list[L7Record] | None:
        """A segment that is exactly a known response head and its whole body, answering a request that
        is neither HEAD nor CONNECT; None: take the long way."""
        found = self.cache.responses.get(payload[:end])
        if found is None or found[2] != len(payload) - end or not self.pending \
                or self.pending[0].method in ("HEAD", "CONNECT"):
            return None
        return [self._response_record(found[0], found[1], self.pending.popleft(), ts_ns)]

    def _cached_request(self, d: _Direction, head: bytes, ts_ns: int, out: list[L7Record]) -> None:
        """A complete request head: a repeated one costs two dict lookups."""
        key = (head, self.server_host)
        found = self.cache.requests.get(key)
        if found is None:
            start, headers, fields = self.cache.head(head)
            records: list[L7Record] = []
            self._request(d, start, headers, ts_ns, records, False, fields)
            if not records:  # not a request line we accept: counted, nothing to remember
                return
            found = self.cache.remember(self.cache.requests, head, key,
                                        (records[0], self.pending[-1], fields, _body_length(fields, False)))
            out.append(records[0])
            return
        record, pending, fields, _length = found
        out.append(record)
        self._queue(_Pending(pending.method, pending.url, pending.protocol, ts_ns, pending.upgrade,
                             pending.http_fields))
        self._body(d, fields, False)

    def _cached_response(self, d: _Direction, head: bytes, ts_ns: int, out: list[L7Record]) -> None:
        start, headers, fields = self.cache.head(head)
        self._response(d, start, headers, ts_ns, out, False, fields, head)

    def _message(self, d: _Direction, lines: list[bytes], ts_ns: int, out: list[L7Record], partial: bool) -> None:
        headers = header_fields(lines[1:])
        if d.is_client:
            self._request(d, lines[0], headers, ts_ns, out, partial, dict(headers))
        else:
            self._response(d, lines[0], headers, ts_ns, out, partial, dict(headers))

    def _could_start(self, d: _Direction, tail: bytes) -> bool:
        """A short tail of a segment that may be the beginning of a start line split across segments."""
        if d.is_client:
            return any(p.startswith(tail) or tail.startswith(p) for p in _METHOD_PREFIXES)
        return b"HTTP/1.1 ".startswith(tail[:9]) or b"HTTP/1.0 ".startswith(tail[:9])

    def _request(self, d: _Direction, start: bytes, headers: list[tuple[str, str]], ts_ns: int,
                 out: list[L7Record], partial: bool, fields: dict[str, str]) -> None:
        parts = start.split(b" ")
        if len(parts) != 3 or parts[0] not in METHODS or not parts[2].startswith(b"HTTP/1."):
            self.stats.error(self.protocol, "bad_request_line")
            d.state = RESYNC
            return
        method = parts[0].decode("latin-1")
        target = parts[1].decode("latin-1")
        protocol = parts[2].decode("latin-1")
        host = fields.get("host") or self.server_host
        url = build_url(self.config, self.scheme, host, target) if method != "CONNECT" else target
        out.append(request_record(self.config, protocol, method, url, headers, partial, self.protocol))
        self._queue(_Pending(method, url, protocol, ts_ns, fields.get("upgrade", "").lower(),
                             _http_fields(method, url, protocol)))
        self._body(d, fields, False)

    def _queue(self, request: _Pending) -> None:
        if len(self.pending) >= self.config.max_pending:
            self.pending.popleft()
            self.stats.error(self.protocol, "pending_overflow")
        self.pending.append(request)

    def _response(self, d: _Direction, start: bytes, headers: list[tuple[str, str]], ts_ns: int,
                  out: list[L7Record], partial: bool, fields: dict[str, str], head: bytes = b"") -> None:
        parts = start.split(b" ", 2)
        try:
            code = int(parts[1])
        except (IndexError, ValueError):
            code = -1
        if not 100 <= code <= 999:
            self.stats.error(self.protocol, "bad_status_line")
            d.state = RESYNC
            return
        if 100 <= code < 200 and code != 101:  # interim: the final response follows
            return
        req = self.pending.popleft() if self.pending else None
        if req is None:
            self.stats.error(self.protocol, "response_without_request")
            out.append(response_record(self.config, parts[0].decode("latin-1"), code, "", "", 0, headers,
                                       True, self.protocol))
        elif code == 101 and req.upgrade == "h2c":
            self._to_http2(req)
            return
        elif head:
            out.append(self._complete_response(head, req, code, headers, fields, ts_ns))
        else:
            out.append(response_record(self.config, req.protocol, code, req.method, req.url,
                                       ts_ns - req.ts_ns, headers, partial, self.protocol))
        if code == 101 or (req is not None and req.method == "CONNECT" and 200 <= code < 300):
            self.client.state = self.server.state = DONE  # another protocol (or a tunnel) from here on
            return
        if (req is not None and req.method == "HEAD") or code in (204, 304):
            d.state = START
            return
        self._body(d, fields, True)

    def _complete_response(self, head: bytes, req: _Pending, code: int, headers: list[tuple[str, str]],
                           fields: dict[str, str], ts_ns: int) -> L7Record:
        """response_record's result, from the HTTP part cached for this head (code, headers)."""
        cached = self.cache.responses.get(head)
        if cached is None:
            plain = 200 <= code and code not in (204, 304)  # its body is framed by its own headers
            http = flow_pb2.HTTP(code=code, headers=header_messages(self.config, headers))
            cached = self.cache.remember(self.cache.responses, head, head, (
                http.SerializeToString(), code, _body_length(fields, True) if plain else -1))
        return self._response_record(cached[0], code, req, ts_ns)

    def _response_record(self, template: bytes, code: int, req: _Pending, ts_ns: int) -> L7Record:
        """response_record's result as bytes: the response head's HTTP fields (code, headers) followed by
        the request's (method, url, protocol) make one HTTP message."""
        latency_ns = max(ts_ns - req.ts_ns, 0)
        fields = req.http_fields
        latency = _LATENCY + varint(latency_ns) if latency_ns else b""
        layer7 = b"".join((_RESPONSE, latency, _HTTP, varint(len(template) + len(fields)), template, fields))
        summary = f"{req.protocol} {code} {latency_ns // 1_000_000}ms ({req.method} {req.url})"
        return L7Record(None, True, summary, False, self.protocol, layer7)

    def _body(self, d: _Direction, fields: dict[str, str], is_response: bool) -> None:
        if "chunked" in fields.get("transfer-encoding", "").lower():
            d.state = CHUNK_SIZE
            return
        length = fields.get("content-length")
        if length is not None:
            try:
                d.remaining = int(length.split(",")[0])
            except ValueError:
                d.remaining = -1
            if d.remaining < 0:
                self.stats.error(self.protocol, "bad_content_length")
                d.state = RESYNC
                return
            d.state = BODY if d.remaining else START
            return
        d.state = UNTIL_CLOSE if is_response else START

    def _chunk_size(self, d: _Direction, payload: bytes, pos: int) -> int:
        line, pos = self._line_until(d, payload, pos, b"\r\n", _MAX_LINE)
        if line is None:
            return -1
        try:
            size = int(line.split(b";", 1)[0].strip(), 16)
        except ValueError:
            size = -1
        if size < 0:
            self.stats.error(self.protocol, "bad_chunk")
            d.state = RESYNC
            return -1
        if size == 0:
            d.state = TRAILERS
        else:
            d.state = CHUNK_DATA
            d.remaining = size + 2  # data and its CRLF
        return pos

    def _trailers(self, d: _Direction, payload: bytes, pos: int) -> int:
        if not d.buf and payload.startswith(b"\r\n", pos):
            d.state = START
            return pos + 2
        line, pos = self._line_until(d, payload, pos, b"\r\n\r\n", self.config.max_header_bytes)
        if line is None:
            return -1
        d.state = START
        return pos

    def _to_http2(self, req: _Pending) -> None:
        """h2c upgrade accepted: HTTP/2 takes over, and the upgrade request is stream 1's request."""
        from .http2 import Http2Parser  # imported here: http2 imports this module's helpers

        self.replacement = Http2Parser(self.config, self.stats, self.server_host, preface_expected=True,
                                       upgrade=(req.method, req.url, req.ts_ns))
        self.client.state = self.server.state = DONE
