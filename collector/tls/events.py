"""The TLS capture's event (bpf/tls_uprobes.h `struct tls_event`) as Python sees it. Keep in step
with the header (TLS_EVENT_SIZE)."""

from __future__ import annotations

import struct
from typing import NamedTuple

OP_WRITE, OP_READ, OP_BIND, OP_FREE = 1, 2, 3, 4
L7_PREFIX, L7_STREAM = 1, 2

TLS_EVENT_SIZE = 72
EVENT = struct.Struct("<QQ16s16sIIIHHHBBB3x")
assert EVENT.size == TLS_EVENT_SIZE

_V4_MAPPED = b"\0" * 10 + b"\xff\xff"


class TlsEvent(NamedTuple):
    """Field order is the C struct's. `family` 0: the connection is not known yet."""

    ts_ns: int
    ssl: int
    laddr: bytes
    raddr: bytes
    tgid: int
    len: int
    netns: int
    lport: int
    rport: int
    cap_len: int
    family: int
    op: int
    mode: int


_new_event = tuple.__new__


def unpack_event(raw: bytes) -> TlsEvent:
    """Raises struct.error if `raw` is shorter than the struct."""
    return _new_event(TlsEvent, EVENT.unpack_from(raw))


def payload(raw: bytes, event: TlsEvent) -> bytes:
    return raw[TLS_EVENT_SIZE:TLS_EVENT_SIZE + event.cap_len]


def unmapped(family: int, addr: bytes) -> tuple[int, bytes]:
    """An IPv6 socket talking IPv4 (::ffff:a.b.c.d) is the IPv4 connection the TC datapath sees."""
    if family == 6 and addr.startswith(_V4_MAPPED):
        return 4, addr[12:16] + b"\0" * 12
    return family, addr
