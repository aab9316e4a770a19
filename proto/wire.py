"""Protobuf wire-format primitives for code that frames messages by hand (the collector's flows and
ring entries, storage's ingest envelopes): varints, field keys, length-delimited fields, Timestamps.

The wire format never changes; tests check these against protobuf's own encoder."""

from __future__ import annotations

_LENGTH_DELIMITED = {9, 11, 12}  # FieldDescriptor.TYPE_STRING, TYPE_MESSAGE, TYPE_BYTES
_VARINT = {3, 4, 5, 8, 13, 14}  # TYPE_INT64, UINT64, INT32, BOOL, UINT32, ENUM (non-negative values)
VARINT, LENGTH_DELIMITED = 0, 2  # wire types


def _varint(n: int) -> bytes:
    out = bytearray()
    while n > 0x7F:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


_SMALL = 1 << 14  # lengths below this (most messages) and nanosecond parts come from tables
_SMALL_VARINTS = [_varint(n) for n in range(_SMALL)]
_LOW_14 = [bytes(((n & 0x7F) | 0x80, (n >> 7) | 0x80)) for n in range(_SMALL)]  # the first two bytes of a longer one


def varint(n: int) -> bytes:
    """Base-128 varint of a non-negative integer."""
    if n < _SMALL:
        return _SMALL_VARINTS[n]
    if n < _SMALL * _SMALL:  # no recursion for nanoseconds of a timestamp, latencies up to ~4 minutes
        return _LOW_14[n & 0x3FFF] + _SMALL_VARINTS[n >> 14]
    return _LOW_14[n & 0x3FFF] + varint(n >> 14)


def key(number: int, wire_type: int) -> bytes:
    """The key that starts field `number` of wire type VARINT or LENGTH_DELIMITED (for messages defined
    outside the generated protos, such as storage's ingest envelopes)."""
    return varint(number << 3 | wire_type)


def tag(message, name: str) -> bytes:
    """The key (field number and wire type) that starts field `name` of a message type."""
    descriptor = message.DESCRIPTOR.fields_by_name[name]
    if descriptor.type in _LENGTH_DELIMITED:
        return key(descriptor.number, LENGTH_DELIMITED)
    if descriptor.type in _VARINT:
        return key(descriptor.number, VARINT)
    raise ValueError(f"field {message.DESCRIPTOR.name}.{name}: expected a varint, string or message field")


def string_field(key: bytes, value: bytes) -> bytes:
    """A length-delimited field; nothing for an empty value (proto3 leaves empty fields out)."""
    return b"".join((key, varint(len(value)), value)) if value else b""


_SECONDS, _NANOS = varint(1 << 3), varint(2 << 3)  # google.protobuf.Timestamp


def timestamp(wall_ns: int) -> bytes:
    """Bytes of google.protobuf.Timestamp for nanoseconds since the epoch (>= 0)."""
    seconds, nanos = divmod(wall_ns, 1_000_000_000)
    return (_SECONDS + varint(seconds) if seconds else b"") + (_NANOS + varint(nanos) if nanos else b"")


class TimestampCache:
    """timestamp() for times that mostly share their second (a datapath's flows): the seconds part is
    encoded once per second."""

    __slots__ = ("_second", "_prefix")

    def __init__(self) -> None:
        self._second, self._prefix = 0, b""

    def encode(self, wall_ns: int) -> bytes:
        seconds, nanos = divmod(wall_ns, 1_000_000_000)
        if seconds != self._second:
            self._second, self._prefix = seconds, _SECONDS + varint(seconds) if seconds else b""
        if nanos >= _SMALL:  # varint() inlined: this runs for every flow, and nanos < 2**30 takes three steps at most
            if nanos < _SMALL * _SMALL:
                return b"".join((self._prefix, _NANOS, _LOW_14[nanos & 0x3FFF], _SMALL_VARINTS[nanos >> 14]))
            return b"".join((self._prefix, _NANOS, _LOW_14[nanos & 0x3FFF], _LOW_14[(nanos >> 14) & 0x3FFF],
                             _SMALL_VARINTS[nanos >> 28]))
        return self._prefix + _NANOS + _SMALL_VARINTS[nanos] if nanos else self._prefix
