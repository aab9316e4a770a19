"""Flows as the relay carries them: the bytes a collector sent, with the two facts the relay needs.

A node's FlowBatch is read twice by protobuf's C parser, through two views of the same wire bytes that
observer.proto and flow.proto define: once with each response's flow as `bytes` (what is stored and
forwarded, unchanged), once with the flow as a message of only `time` and `uuid` (everything else is
skipped). No flow is parsed whole or serialized again to be stored or forwarded; a flow is parsed only
where a filter, a field mask or a hook needs the message (FlowEntry.parse).

The views are made from the generated descriptors (field numbers and types as flow.proto gives them),
so they cannot drift from the real messages; the response bytes sent to clients are framed with
proto.wire's helpers.
"""

from __future__ import annotations

import functools
import logging
from typing import NamedTuple

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory, timestamp_pb2
from google.protobuf.message import DecodeError

from proto.flow import flow_pb2
from proto.flowscope import flowscope_pb2
from proto.observer import observer_pb2
from proto.wire import TimestampCache, string_field, tag, varint

_FLOW_FIELD, _NAME_FIELD, _TIME_FIELD = (tag(observer_pb2.GetFlowsResponse, name)
                                         for name in ("flow", "node_name", "time"))
_RESPONSES = tag(flowscope_pb2.FlowBatch, "responses")
_PACKAGE = "flowscope.relay_wire"
log = logging.getLogger(__name__)


class FlowEntry(NamedTuple):
    """One flow in the relay: its time and uuid, its serialized Flow as the collector sent it, and the
    node it came from. The first three fields are what FlowWriter.write_bytes takes."""

    time_ns: int
    uuid: str
    data: bytes
    node_name: str

    def parse(self) -> flow_pb2.Flow:
        return flow_pb2.Flow.FromString(self.data)

    def response(self, stamps: TimestampCache) -> bytes:
        """Bytes of GetFlowsResponse(flow=<these bytes>, node_name, time=the flow's time)."""
        stamp = stamps.encode(self.time_ns)
        return b"".join((_FLOW_FIELD, varint(len(self.data)), self.data,
                         string_field(_NAME_FIELD, self.node_name.encode()),
                         _TIME_FIELD, varint(len(stamp)), stamp))


def _field(message, name: str, **changes) -> descriptor_pb2.FieldDescriptorProto:
    """Field `name` of a generated message (its number and type from flow.proto), outside any oneof,
    with `changes` applied (None clears): the building block of a view."""
    proto = descriptor_pb2.DescriptorProto()
    message.DESCRIPTOR.CopyToProto(proto)
    field = next(f for f in proto.field if f.name == name)
    field.ClearField("oneof_index")
    for attribute, value in changes.items():
        if value is None:
            field.ClearField(attribute)
        else:
            setattr(field, attribute, value)
    return field


def _views() -> tuple[type, type, type]:
    """Three views of a FlowBatch: its responses as bytes; its flows as bytes (with each response's
    node_name); its flows as FlowKey, a message of only Flow's time and uuid."""
    message = descriptor_pb2.FieldDescriptorProto.TYPE_MESSAGE
    as_bytes = {"type": descriptor_pb2.FieldDescriptorProto.TYPE_BYTES, "type_name": None}
    timestamp_file = descriptor_pb2.FileDescriptorProto()
    timestamp_pb2.Timestamp.DESCRIPTOR.file.CopyToProto(timestamp_file)
    file = descriptor_pb2.FileDescriptorProto(name="flowscope/relay_wire.proto", package=_PACKAGE,
                                              syntax="proto3", dependency=[timestamp_file.name])
    flow_key = file.message_type.add(name="FlowKey")
    flow_key.field.extend([_field(flow_pb2.Flow, "time", type_name=f".{timestamp_pb2.Timestamp.DESCRIPTOR.full_name}"),
                           _field(flow_pb2.Flow, "uuid")])
    batches = {"RawBatch": None,
               "BytesBatch": [_field(observer_pb2.GetFlowsResponse, "flow", **as_bytes),
                              _field(observer_pb2.GetFlowsResponse, "node_name")],
               "KeyBatch": [_field(observer_pb2.GetFlowsResponse, "flow", type=message,
                                   type_name=f".{_PACKAGE}.FlowKey")]}
    for name, response_fields in batches.items():
        batch = file.message_type.add(name=name)
        if response_fields is None:
            batch.field.append(_field(flowscope_pb2.FlowBatch, "responses", **as_bytes))
            continue
        # the flow stays in its oneof: HasField tells a flow (even an empty one) from the other responses
        response = file.message_type.add(name=f"{name}Response", field=response_fields)
        response.oneof_decl.add(name="response_types")
        response.field[0].oneof_index = 0
        batch.field.append(_field(flowscope_pb2.FlowBatch, "responses", type_name=f".{_PACKAGE}.{response.name}"))
    pool = descriptor_pool.DescriptorPool()
    pool.Add(timestamp_file)
    pool.Add(file)
    return tuple(message_factory.GetMessageClass(pool.FindMessageTypeByName(f"{_PACKAGE}.{name}"))
                 for name in batches)


_RawBatch, _BytesBatch, _KeyBatch = _views()
_new_entry = functools.partial(tuple.__new__, FlowEntry)


def _entries(data: bytes, node_name: str) -> list:
    """The batch's responses, flows as FlowEntry and the rest (lost events, node status) as messages;
    raises DecodeError for anything malformed. Runs for every flow of the cluster: a few attribute
    reads per flow, in comprehensions."""
    responses = _BytesBatch.FromString(data).responses
    keys = [r.flow for r in _KeyBatch.FromString(data).responses]
    stamps = [k.time for k in keys]
    out = list(map(_new_entry, zip([s.seconds * 1_000_000_000 + s.nanos for s in stamps], [k.uuid for k in keys],
                                   [r.flow for r in responses], [r.node_name or node_name for r in responses])))
    others = [i for i, entry in enumerate(out) if not entry.data and not responses[i].HasField("flow")]
    if others:  # lost events, node status (now and then): each parsed whole
        raws = _RawBatch.FromString(data).responses
        for i in others:
            out[i] = observer_pb2.GetFlowsResponse.FromString(raws[i])
            if not out[i].node_name:
                out[i].node_name = node_name
    return out


def decode_batch(data: bytes, node_name: str) -> tuple[list, list[tuple[int, str]]]:
    """A node's FlowBatch bytes -> (its responses: FlowEntry for flows, GetFlowsResponse messages for
    the rest, with `node_name` where the collector gave none; the malformed ones left out, each as
    (index, why)). A malformed response loses only itself."""
    try:
        return _entries(data, node_name), []
    except DecodeError:
        pass
    try:
        responses = _RawBatch.FromString(data).responses
    except DecodeError as err:
        return [], [(0, f"the batch itself is not a FlowBatch ({err})")]
    out, bad = [], []
    for i, raw in enumerate(responses):
        try:
            out.extend(_entries(single_response_batch(raw), node_name))
        except DecodeError as err:
            bad.append((i, f"not a valid GetFlowsResponse ({err})"))
    return out, bad


def single_response_batch(response: bytes) -> bytes:
    """FlowBatch bytes holding one serialized GetFlowsResponse (observer.GetFlows sends one at a time)."""
    return b"".join((_RESPONSES, varint(len(response)), response))


def parsed(entries: list[FlowEntry]) -> list[flow_pb2.Flow]:
    """The entries' flows as messages, for code that needs fields (hooks, filters); a flow whose
    bytes do not parse is left out (a node's framing was checked, not every field of every flow)."""
    out = []
    for entry in entries:
        try:
            out.append(flow_pb2.Flow.FromString(entry.data))
        except DecodeError:
            log.warning("flow %s from %s: not a valid Flow, left out", entry.uuid or "(no uuid)", entry.node_name)
    return out


def entry_of(flow: flow_pb2.Flow) -> FlowEntry:
    """A flow message (one read from storage) as the relay carries flows."""
    stamp = flow.time
    return FlowEntry(stamp.seconds * 1_000_000_000 + stamp.nanos, flow.uuid, flow.SerializeToString(),
                     flow.node_name)
