"""HTTP/2 cleartext (h2c) and gRPC on top of it, seen as payload prefixes of TCP segments.

Frames are followed per direction by their 9-byte headers; DATA is skipped by count, so unseen
bytes of a segment cost nothing. Header blocks (HEADERS + CONTINUATION) are decoded with the `hpack`
library, one decoder per direction, bounded in table size and decoded header-list size (HPACK bombs
stop there). If a header block was not seen completely the decoder state is unknown: the direction
starts again from a fresh decoder, and every record whose block could not be decoded is marked
partial. A fresh decoder never guesses: entries inserted since the reset keep the peer's indexes,
and an index into the unknown older part fails to decode (-> partial) instead of naming a wrong header.

Records: a request per stream (":method", ":scheme://:authority:path"), a response per stream with
":status"; for gRPC (content-type application/grpc*) the response waits for the trailers and carries
grpc-status / grpc-message as headers, so its latency is the call's latency.

The TC hook sees every copy of a segment: a TCP retransmission (the kernel's tail loss probe resends
a segment whose ACK is late, e.g. a gRPC call's trailers while the client delays its ACK) brings header
blocks of streams that have ended. A block already decoded on its stream is not decoded again (its literals
would enter the HPACK table twice), and no stream that has ended gets a second record.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field

import hpack

from .httprecord import build_url, request_record, response_record
from .stream import consume, unseen_bytes
from .types import L7Config, L7Record, L7Stats

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
PROTOCOL = "HTTP/2"
DATA, HEADERS, PRIORITY, RST_STREAM, SETTINGS, PUSH_PROMISE, PING, GOAWAY, WINDOW_UPDATE, CONTINUATION = range(10)
END_STREAM, ACK, END_HEADERS, PADDED, PRIORITY_FLAG = 0x1, 0x1, 0x4, 0x8, 0x20
_KEEP = frozenset({HEADERS, PUSH_PROMISE, CONTINUATION, SETTINGS})  # payloads we read; the rest is skipped
_DEFAULT_MAX_FRAME = 16384
_DEFAULT_TABLE = 4096
_CACHE_ENTRIES, _CACHE_DECODED_BYTES = 64, 4096  # bounds of the decoded-block cache per direction
_LARGEST_FRAME = (1 << 24) - 1
_RECENT_BLOCKS = 16  # header blocks remembered per direction to recognise a retransmitted one

# Per-direction states.
S_PREFACE, S_HEADER, S_PAYLOAD, S_RESYNC = range(4)


@dataclass(slots=True)
class _Stream:
    method: str = ""
    url: str = ""
    ts_ns: int = 0
    grpc: bool = False
    partial: bool = False
    status: int = 0
    headers: list = field(default_factory=list)


class _Direction:
    __slots__ = ("is_client", "state", "buf", "remaining", "ftype", "flags", "stream", "lost",
                 "decoder", "block", "block_stream", "block_flags", "block_lost", "max_frame", "decoded",
                 "table_limit", "recent")

    def __init__(self, is_client: bool, state: int, config: L7Config, table_limit: int) -> None:
        self.is_client = is_client
        self.state = state
        self.buf = bytearray()
        self.remaining = 0
        self.ftype = self.flags = self.stream = 0
        self.lost = False  # bytes of the current frame's payload were not seen
        self.table_limit = table_limit  # HPACK table size the receiving peer allows (its SETTINGS)
        self.decoder = _decoder(config, table_limit)
        self.block = bytearray()
        self.block_stream = 0
        self.block_flags = 0
        self.block_lost = False
        self.max_frame = _DEFAULT_MAX_FRAME  # as advertised by the receiving peer's SETTINGS
        self.decoded: dict[bytes, list] = {}  # header blocks that left the table alone -> their headers
        self.recent: OrderedDict[tuple[int, int], None] = OrderedDict()  # (stream, hash of block) lately decoded


def _decoded_size(headers: list) -> int:
    return sum(len(name) + len(value) for name, value in headers)


def _decoder(config: L7Config, table_limit: int) -> hpack.Decoder:
    decoder = hpack.Decoder(max_header_list_size=config.h2_max_header_list)
    decoder.max_allowed_table_size = min(table_limit, config.h2_max_table_size)
    return decoder


class Http2Parser:
    """One connection's HTTP/2 parser. `upgrade` = (method, url, ts_ns) of an HTTP/1.1 request that
    was upgraded to h2c: it becomes stream 1's request."""

    protocol = "http2"
    replacement = None
    leftover = None

    def __init__(self, config: L7Config, stats: L7Stats, server_host: str, preface_expected: bool = True,
                 upgrade: tuple[str, str, int] | None = None) -> None:
        self.config = config
        self.stats = stats
        self.server_host = server_host
        # Seen from the start, the table size is the protocol default until SETTINGS raise it; joined
        # later (or after an upgrade whose settings we do not decode) it may be anything up to the cap.
        limit = _DEFAULT_TABLE if preface_expected and upgrade is None else config.h2_max_table_size
        self.client = _Direction(True, S_PREFACE if preface_expected else S_RESYNC, config, limit)
        self.server = _Direction(False, S_HEADER if preface_expected else S_RESYNC, config, limit)
        self.streams: OrderedDict[int, _Stream] = OrderedDict()
        # Client streams [first_stream, last_stream] whose requests this parser saw: one of them that is
        # not open has ended. Seen from the preface, every stream is; joined later, none before the first.
        self.first_stream = 1 if preface_expected or upgrade is not None else 0
        self.last_stream = 0
        if upgrade is not None:
            self.streams[1] = _Stream(method=upgrade[0], url=upgrade[1], ts_ns=upgrade[2])
            self.last_stream = 1

    def feed(self, from_client: bool, payload: bytes, segment_len: int, ts_ns: int) -> list[L7Record]:
        d = self.client if from_client else self.server
        out: list[L7Record] = []
        n, pos = len(payload), 0
        missing = unseen_bytes(payload, segment_len)
        if d.state == S_RESYNC:
            if not self._plausible(d, payload):
                return out
            d.state = S_HEADER
        while True:
            if d.state == S_PAYLOAD:
                start = pos
                pos, d.remaining, missing, unseen = consume(d.remaining, pos, n, missing)
                if d.ftype in _KEEP and not d.lost:
                    if len(d.buf) + pos - start > self.config.max_header_bytes:
                        self.stats.error(self.protocol, "oversized_frame")
                        d.lost = True
                        d.buf.clear()
                    else:
                        d.buf += payload[start:pos]
                if unseen:
                    d.lost = True
                if d.remaining:
                    return out
                self._frame(d, ts_ns, out)
                d.state = S_HEADER
                d.buf.clear()
                continue
            if pos >= n:
                if missing:
                    self.stats.error(self.protocol, "lost_sync")
                    d.state = S_RESYNC
                    d.buf.clear()
                return out
            if d.state == S_PREFACE:
                want = len(PREFACE) - len(d.buf)
                d.buf += payload[pos:pos + want]
                pos += min(want, n - pos)
                if len(d.buf) < len(PREFACE):
                    if not PREFACE.startswith(d.buf):
                        return self._not_http2(d, out)
                    continue
                if d.buf != PREFACE:
                    return self._not_http2(d, out)
                d.buf.clear()
                d.state = S_HEADER
                continue
            # S_HEADER: 9 bytes, possibly split across segments
            if d.buf or n - pos < 9:
                want = 9 - len(d.buf)
                d.buf += payload[pos:pos + want]
                pos += min(want, n - pos)
                if len(d.buf) < 9:
                    continue
                header = bytes(d.buf)
                d.buf.clear()
            else:
                header = payload[pos:pos + 9]
                pos += 9
            length = int.from_bytes(header[0:3], "big")
            d.ftype = header[3]
            d.flags = header[4]
            d.stream = int.from_bytes(header[5:9], "big") & 0x7FFFFFFF
            d.remaining = length
            d.lost = False
            d.state = S_PAYLOAD
            if length > d.max_frame:
                self.stats.error(self.protocol, "oversized_frame")
                d.lost = True  # a peer must not send it: skip it by count, never buffer it

    def _not_http2(self, d: _Direction, out: list[L7Record]) -> list[L7Record]:
        self.stats.error(self.protocol, "bad_preface")
        d.state = S_RESYNC
        d.buf.clear()
        return out

    def _plausible(self, d: _Direction, payload: bytes) -> bool:
        """Does a segment start with a frame header? Used to find frames again after losing them."""
        if len(payload) < 9:
            return False
        length = int.from_bytes(payload[0:3], "big")
        ftype = payload[3]
        stream = int.from_bytes(payload[5:9], "big")
        if ftype > CONTINUATION or length > d.max_frame or stream & 0x80000000:
            return False
        if ftype in (SETTINGS, PING, GOAWAY):
            return stream == 0
        return ftype == WINDOW_UPDATE or stream != 0

    # -- frames -------------------------------------------------------------------------------------------
    def _frame(self, d: _Direction, ts_ns: int, out: list[L7Record]) -> None:
        ftype = d.ftype
        if ftype == DATA:
            if d.flags & END_STREAM and not d.is_client:
                self._server_end(d.stream, None, ts_ns, out, partial=False)
        elif ftype == HEADERS or ftype == PUSH_PROMISE:
            if d.block:
                self.stats.error(self.protocol, "headers_interleaved")
            fragment = self._fragment(d)
            d.block = bytearray(fragment if fragment is not None else b"")
            d.block_lost = fragment is None
            # A pushed request's block is decoded only to keep the table in step (stream 0: no record).
            d.block_stream = d.stream if ftype == HEADERS else 0
            d.block_flags = d.flags
            if d.flags & END_HEADERS:
                self._block_done(d, ts_ns, out)
        elif ftype == CONTINUATION:
            if d.lost or len(d.block) + len(d.buf) > self.config.max_header_bytes:
                d.block_lost = True
            else:
                d.block += d.buf
            if d.flags & END_HEADERS:
                self._block_done(d, ts_ns, out)
        elif ftype == RST_STREAM:
            stream = self.streams.pop(d.stream, None)
            if stream is not None and stream.method:
                out.append(self._response(stream, ts_ns, partial=True))
        elif ftype == SETTINGS and not d.flags & ACK and not d.lost:
            other = self.server if d.is_client else self.client
            for i in range(0, len(d.buf) - 5, 6):
                setting, value = int.from_bytes(d.buf[i:i + 2], "big"), int.from_bytes(d.buf[i + 2:i + 6], "big")
                if setting == 1:  # SETTINGS_HEADER_TABLE_SIZE: what the peer's encoder may use
                    other.table_limit = value
                    other.decoder.max_allowed_table_size = min(value, self.config.h2_max_table_size)
                elif setting == 5:  # SETTINGS_MAX_FRAME_SIZE
                    other.max_frame = min(value, _LARGEST_FRAME)

    def _fragment(self, d: _Direction) -> bytes | None:
        """The header block fragment of a HEADERS or PUSH_PROMISE frame without padding, priority fields
        or the promised stream id."""
        if d.lost:
            return None
        data = bytes(d.buf)
        start, end = 0, len(data)
        if d.flags & PADDED:
            if not data:
                return None
            start = 1
            end -= data[0]
        if d.ftype == PUSH_PROMISE:
            start += 4
        elif d.flags & PRIORITY_FLAG:
            start += 5
        if start > end:
            self.stats.error(self.protocol, "bad_padding")
            return None
        return data[start:end]

    def _block_done(self, d: _Direction, ts_ns: int, out: list[L7Record]) -> None:
        headers = None
        if d.block_lost:
            self.stats.error(self.protocol, "header_block_not_seen")
            d.decoder = _decoder(self.config, d.table_limit)
            d.decoded.clear()
        else:
            block = bytes(d.block)
            if d.block_stream and self._repeated(d, block):
                d.block = bytearray()
                return
            headers = self._decode(d, block)
        d.block = bytearray()
        stream, end_stream = d.block_stream, bool(d.block_flags & END_STREAM)
        if stream == 0:
            return
        if d.is_client:
            self._client_headers(stream, headers, ts_ns, out)
        else:
            self._server_headers(stream, headers, end_stream, ts_ns, out)

    def _repeated(self, d: _Direction, block: bytes) -> bool:
        """Was this block decoded on this stream already? Then the segment is a retransmission: a stream
        carries at most two blocks per direction (headers, trailers), never the same twice."""
        key = (d.block_stream, hash(block))  # a hash, not the block: bounded memory per connection
        if key in d.recent:
            return True
        d.recent[key] = None
        if len(d.recent) > _RECENT_BLOCKS:
            d.recent.popitem(last=False)
        return False

    def _ended(self, sid: int) -> bool:
        """A client stream whose request was seen and which is no longer open (also one evicted by the
        stream bound, whose request record was made): its late blocks make no record."""
        return bool(sid & 1) and self.first_stream <= sid <= self.last_stream and sid not in self.streams

    def _decode(self, d: _Direction, block: bytes) -> list | None:
        """HPACK-decode a block. gRPC and most HTTP/2 clients repeat identical blocks made only of
        references once their table is warm; such a block decodes the same way until the table changes,
        so its result is reused (a third of a gRPC call's parse time otherwise)."""
        headers = d.decoded.get(block)
        if headers is not None:
            return headers
        table = d.decoder.header_table
        before = (len(table.dynamic_entries), table.dynamic_entries[0] if table.dynamic_entries else None,
                  table.maxsize)
        try:
            headers = d.decoder.decode(block)
        except hpack.OversizedHeaderListError:
            self.stats.error(self.protocol, "hpack_bomb")
        except (hpack.HPACKError, ValueError, IndexError, UnicodeDecodeError):
            self.stats.error(self.protocol, "hpack_error")
        if headers is None:
            d.decoder = _decoder(self.config, d.table_limit)
            d.decoded.clear()
            return None
        after = (len(table.dynamic_entries), table.dynamic_entries[0] if table.dynamic_entries else None,
                 table.maxsize)
        if after != before:
            d.decoded.clear()
        elif len(d.decoded) < _CACHE_ENTRIES and _decoded_size(headers) <= _CACHE_DECODED_BYTES:
            d.decoded[block] = headers
        return headers

    # -- streams -----------------------------------------------------------------------------------------
    def _client_headers(self, sid: int, headers: list | None, ts_ns: int, out: list[L7Record]) -> None:
        if sid in self.streams or self._ended(sid):  # request trailers, or a block of an ended stream
            return
        if not self.first_stream:
            self.first_stream = sid
        self.last_stream = max(self.last_stream, sid)
        fields = dict(headers or ())
        method = fields.get(":method", "")
        url = ""
        if ":path" in fields:
            url = build_url(self.config, fields.get(":scheme", "http"), fields.get(":authority", "")
                            or self.server_host, fields[":path"])
        partial = headers is None or not method
        stream = _Stream(method=method, url=url, ts_ns=ts_ns, partial=partial,
                         grpc=fields.get("content-type", "").startswith("application/grpc"))
        self._remember(sid, stream)
        out.append(request_record(self.config, PROTOCOL, method, url, headers or (), partial, self.protocol))

    def _server_headers(self, sid: int, headers: list | None, end_stream: bool, ts_ns: int,
                        out: list[L7Record]) -> None:
        stream = self.streams.get(sid)
        if stream is None and self._ended(sid):
            return  # late trailers, or a retransmission older than `recent`: its response is recorded
        if stream is None:
            self.stats.error(self.protocol, "response_without_request")
            stream = _Stream(ts_ns=ts_ns, partial=True)
            self._remember(sid, stream)
        if headers is None:
            stream.partial = True
        else:
            status = dict(headers).get(":status")
            if status is not None:
                code = int(status) if status.isascii() and status.isdigit() else 0  # "²".isdigit()
                if 100 <= code < 200 and not end_stream:
                    return  # interim response
                stream.status = code
            stream.headers.extend(headers)
        if end_stream or not stream.grpc:
            self._server_end(sid, stream, ts_ns, out, stream.partial)

    def _server_end(self, sid: int, stream: _Stream | None, ts_ns: int, out: list[L7Record],
                    partial: bool) -> None:
        if stream is None:
            stream = self.streams.get(sid)
            if stream is None or not stream.grpc:  # non-gRPC responses were emitted at their headers
                return
        del self.streams[sid]
        out.append(self._response(stream, ts_ns, partial or stream.partial))

    def _response(self, stream: _Stream, ts_ns: int, partial: bool) -> L7Record:
        return response_record(self.config, PROTOCOL, stream.status, stream.method, stream.url,
                               ts_ns - stream.ts_ns, stream.headers, partial, self.protocol)

    def _remember(self, sid: int, stream: _Stream) -> None:
        self.streams[sid] = stream
        if len(self.streams) > self.config.h2_max_streams:
            self.streams.popitem(last=False)
            self.stats.error(self.protocol, "stream_overflow")
