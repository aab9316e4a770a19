"""Hand-framed protobuf encoding of GetFlowsResponse and FlowBatch for the batched node -> relay stream.

Building a GetFlowsResponse copies its Flow (~6 µs in Python) and a FlowBatch copies every response
again; serializing the stored Flow once and framing the bytes around it costs about a tenth of that.
The framing is the protobuf wire format (length-delimited fields), which never changes; the test
suite checks that the result parses back to the same messages.
"""

from __future__ import annotations

from proto.flow import flow_pb2
from proto.observer import observer_pb2


def varint(n: int) -> bytes:
    out = bytearray()
    while n > 0x7F:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def _field(tag: bytes, payload: bytes) -> bytes:
    return tag + varint(len(payload)) + payload


# (field number << 3) | 2 (length-delimited), from observer.proto / flowscope.proto.
_FLOW, _LOST = varint(1 << 3 | 2), varint(3 << 3 | 2)
_NODE_NAME, _TIME = varint(1000 << 3 | 2), varint(1001 << 3 | 2)
_BATCH_RESPONSE = varint(1 << 3 | 2)


def encode_response(kind_tag: bytes, payload: bytes, node_name: str, time: bytes) -> bytes:
    parts = [_field(kind_tag, payload)]
    if node_name:
        parts.append(_field(_NODE_NAME, node_name.encode()))
    if time:
        parts.append(_field(_TIME, time))
    return b"".join(parts)


def encode_flow(flow: flow_pb2.Flow, node_name: str) -> bytes:
    """Bytes of GetFlowsResponse(flow=flow, node_name=flow.node_name or node_name, time=flow.time)."""
    return encode_response(_FLOW, flow.SerializeToString(), flow.node_name or node_name,
                           flow.time.SerializeToString())


def encode_lost(lost: flow_pb2.LostEvent, node_name: str, time: bytes) -> bytes:
    return encode_response(_LOST, lost.SerializeToString(), node_name, time)


def encode_batch(responses: list[bytes]) -> bytes:
    """Bytes of FlowBatch(responses=...) from encoded GetFlowsResponses."""
    return b"".join(_field(_BATCH_RESPONSE, r) for r in responses)


def decode_response(data: bytes) -> observer_pb2.GetFlowsResponse:
    return observer_pb2.GetFlowsResponse.FromString(data)
