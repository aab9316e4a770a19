"""Hand-framed protobuf encoding of GetFlowsResponse and FlowBatch.

The ring stores each response serialized once at publish (a parsed Flow costs ~3 KB of memory in
Python, its bytes ~300), and the batched node -> relay stream frames those bytes into FlowBatches
without parsing or copying messages (building a FlowBatch from messages copies every flow twice).
The framing is the protobuf wire format (length-delimited fields), which never changes; the tests
check that the result parses back to the same messages.
"""

from __future__ import annotations

from dataclasses import dataclass

from proto.flow import flow_pb2


def varint(n: int) -> bytes:
    if n < _SMALL:
        return _SMALL_VARINTS[n]
    if n < _SMALL * _SMALL:  # nanoseconds of a timestamp, latencies up to ~4 minutes
        return _LOW_14[n & 0x3FFF] + _SMALL_VARINTS[n >> 14]
    return _LOW_14[n & 0x3FFF] + varint(n >> 14)


def _varint(n: int) -> bytes:
    out = bytearray()
    while n > 0x7F:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


_SMALL = 1 << 14  # message lengths below this (most flows) come from a table
_SMALL_VARINTS = [_varint(n) for n in range(_SMALL)]
_LOW_14 = [bytes(((n & 0x7F) | 0x80, (n >> 7) | 0x80)) for n in range(_SMALL)]  # the first two bytes of a longer one


# (field number << 3) | 2 (length-delimited), from observer.proto / flowscope.proto.
_FLOW, _LOST = varint(1 << 3 | 2), varint(3 << 3 | 2)
FLOW_KEY = _FLOW
_NODE_NAME, _TIME = varint(1000 << 3 | 2), varint(1001 << 3 | 2)
_BATCH_RESPONSE = varint(1 << 3 | 2)
_SECONDS, _NANOS = varint(1 << 3), varint(2 << 3)  # google.protobuf.Timestamp
_FLOW_TIME = varint(1 << 3 | 2)  # Flow.time
_LENGTH_DELIMITED = {9, 11, 12}  # FieldDescriptor.TYPE_STRING, TYPE_MESSAGE, TYPE_BYTES
_VARINT = {3, 4, 5, 8, 13, 14}  # TYPE_INT64, UINT64, INT32, BOOL, UINT32, ENUM (non-negative values)


def encode_response(kind_tag: bytes, payload: bytes, node_name: bytes, time: bytes) -> bytes:
    return b"".join((kind_tag, varint(len(payload)), payload, string_field(_NODE_NAME, node_name),
                     string_field(_TIME, time)))


@dataclass(slots=True)
class EncodedFlow:
    """A flow built as bytes (the decoder's L7 flows): what the Observer stores, without a message.

    `data` is a complete serialized Flow (uuid and time set), `response` the GetFlowsResponse the ring
    keeps for it (see `encoded_flow`), `time_ns` its time and `namespaces` the (cluster, namespace) of
    its endpoints that have one (the Observer's namespace list)."""

    data: bytes
    response: bytes
    time_ns: int
    node_name: str
    namespaces: tuple[tuple[str, str], ...] = ()

    def parse(self) -> flow_pb2.Flow:
        return flow_pb2.Flow.FromString(self.data)


def encoded_flow(data: bytes, time_ns: int, node_name: str,
                 namespaces: tuple[tuple[str, str], ...] = ()) -> EncodedFlow:
    """An EncodedFlow of Flow bytes whose node_name and time are `node_name` and `time_ns`."""
    suffix = time_fields(node_name_field(node_name), timestamp(time_ns))[1]
    return EncodedFlow(data, b"".join((FLOW_KEY, varint(len(data)), data, suffix)), time_ns, node_name, namespaces)


def time_fields(name_field: bytes, stamp: bytes) -> tuple[bytes, bytes]:
    """For a flow of time `stamp` (Timestamp bytes): its Flow.time field, and its GetFlowsResponse's
    suffix after `name_field` (string_field of the node name's key and value)."""
    size = varint(len(stamp))
    return b"".join((_FLOW_TIME, size, stamp)), b"".join((name_field, _TIME, size, stamp)) if stamp else name_field


def node_name_field(node_name: str) -> bytes:
    """GetFlowsResponse.node_name as a field, for time_fields."""
    return string_field(_NODE_NAME, node_name.encode())


def encode_flows(flows: list[flow_pb2.Flow | EncodedFlow], node_name: str) -> list[bytes]:
    """Bytes of GetFlowsResponse(flow=flow, node_name=flow.node_name or node_name, time=flow.time) for
    each flow (an EncodedFlow's own response). One loop without calls per flow: the datapath encodes
    every flow it publishes here."""
    own_name = string_field(_NODE_NAME, node_name.encode())
    out = []
    for flow in flows:
        if type(flow) is EncodedFlow:
            out.append(flow.response)
            continue
        payload, name, stamp = flow.SerializeToString(), flow.node_name, flow.time.SerializeToString()
        out.append(b"".join((
            _FLOW, varint(len(payload)), payload,
            own_name if not name or name == node_name else string_field(_NODE_NAME, name.encode()),
            string_field(_TIME, stamp))))
    return out


def timestamp(wall_ns: int) -> bytes:
    """Bytes of google.protobuf.Timestamp for nanoseconds since the epoch (>= 0)."""
    seconds, nanos = divmod(wall_ns, 1_000_000_000)
    if seconds and nanos:
        return b"".join((_SECONDS, varint(seconds), _NANOS, varint(nanos)))
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
        if nanos >= _SMALL:  # varint() inlined: nanos < 2**30 takes at most three steps
            if nanos < _SMALL * _SMALL:
                return b"".join((self._prefix, _NANOS, _LOW_14[nanos & 0x3FFF], _SMALL_VARINTS[nanos >> 14]))
            return b"".join((self._prefix, _NANOS, _LOW_14[nanos & 0x3FFF], _LOW_14[(nanos >> 14) & 0x3FFF],
                             _SMALL_VARINTS[nanos >> 28]))
        return self._prefix + _NANOS + _SMALL_VARINTS[nanos] if nanos else self._prefix


def tag(message, name: str) -> bytes:
    """The key (field number and wire type) that starts field `name` of a message type."""
    descriptor = message.DESCRIPTOR.fields_by_name[name]
    if descriptor.type in _LENGTH_DELIMITED:
        return varint(descriptor.number << 3 | 2)
    if descriptor.type in _VARINT:
        return varint(descriptor.number << 3)
    raise ValueError(f"field {message.DESCRIPTOR.name}.{name}: expected a varint, string or message field")


def string_field(key: bytes, value: bytes) -> bytes:
    """A length-delimited field; nothing for an empty value (proto3 leaves empty fields out)."""
    return b"".join((key, varint(len(value)), value)) if value else b""


def encode_lost(lost: flow_pb2.LostEvent, node_name: str, time: bytes) -> bytes:
    return encode_response(_LOST, lost.SerializeToString(), node_name.encode(), time)


def encode_batch(responses: list[bytes]) -> bytes:
    """Bytes of FlowBatch(responses=...) from encoded GetFlowsResponses."""
    return b"".join(b"".join((_BATCH_RESPONSE, varint(len(r)), r)) for r in responses)

