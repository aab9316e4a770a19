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
from proto.wire import string_field, tag, timestamp, varint

# (field number << 3) | 2 (length-delimited), from observer.proto / flowscope.proto.
FLOW_KEY, _LOST = varint(1 << 3 | 2), varint(3 << 3 | 2)
_NODE_NAME, _TIME = varint(1000 << 3 | 2), varint(1001 << 3 | 2)
_BATCH_RESPONSE = varint(1 << 3 | 2)
_FLOW_TIME = tag(flow_pb2.Flow, "time")


def encode_response(kind_tag: bytes, payload: bytes, node_name: bytes, time: bytes) -> bytes:
    return b"".join((kind_tag, varint(len(payload)), payload, string_field(_NODE_NAME, node_name),
                     string_field(_TIME, time)))


@dataclass(slots=True)
class EncodedFlow:
    """A flow built as bytes (the decoder's L7 flows): what the Observer stores, without a message.

    `data` is a complete serialized Flow (uuid and time set), `response` the GetFlowsResponse the ring
    keeps for it (see `encoded_flow`), `time_ns` its time and `namespaces` the (cluster, namespace) of
    its endpoints that have one (the Observer's namespace list). `facts`, if the maker gives them:
    (template, is_reply, L4 protocol number, destination port, TCP flags byte, Layer7 bytes) — the
    template being the serialized fields the flow shares with others (endpoints, IP, direction,
    verdict, event type) and the rest what it adds but time, uuid, source port, summary and
    counters; the metrics count the flow from them (collector.metrics.replay) without parsing it."""

    data: bytes
    response: bytes
    time_ns: int
    node_name: str
    namespaces: tuple[tuple[str, str], ...] = ()
    facts: tuple | None = None

    def parse(self) -> flow_pb2.Flow:
        return flow_pb2.Flow.FromString(self.data)


def encoded_flow(data: bytes, time_ns: int, node_name: str,
                 namespaces: tuple[tuple[str, str], ...] = (), facts: tuple | None = None) -> EncodedFlow:
    """An EncodedFlow of Flow bytes whose node_name and time are `node_name` and `time_ns`."""
    suffix = time_fields(node_name_field(node_name), timestamp(time_ns))[1]
    return EncodedFlow(data, b"".join((FLOW_KEY, varint(len(data)), data, suffix)), time_ns, node_name, namespaces,
                       facts)


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
            FLOW_KEY, varint(len(payload)), payload,
            own_name if not name or name == node_name else string_field(_NODE_NAME, name.encode()),
            string_field(_TIME, stamp))))
    return out


def encode_lost(lost: flow_pb2.LostEvent, node_name: str, time: bytes) -> bytes:
    return encode_response(_LOST, lost.SerializeToString(), node_name.encode(), time)


def encode_batch(responses: list[bytes]) -> bytes:
    """Bytes of FlowBatch(responses=...) from encoded GetFlowsResponses."""
    return b"".join(b"".join((_BATCH_RESPONSE, varint(len(r)), r)) for r in responses)

