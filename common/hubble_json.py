"""Hubble's JSON flow lines — what `hubble observe -o json` prints and Hubble's exporter writes: one
GetFlowsResponse in proto3 JSON with the .proto field names (`{"flow":{...},"node_name":"...","time":"..."}`).
Every flowscope surface that speaks this format (the CLI, the JSON API, exporters) goes through here.

flowscope-only Flow fields (numbered 1,000,000 and up: `counters`, `l7_partial`, `kernel_drop_reason`)
are left out unless asked for: Hubble's readers know no such keys (`hubble observe --input-file` warns
and drops them, strict protojson parsers reject the whole line), so a line is Hubble's own by default.
Reading accepts both, and skips keys of newer Hubble versions as `hubble` itself does."""

from __future__ import annotations

import json

from google.protobuf import json_format

from proto.flow import flow_pb2
from proto.observer import observer_pb2

# Flow fields Hubble does not have (flowscope keeps its own data at field numbers >= 1,000,000).
FLOWSCOPE_FIELDS = tuple(f.name for f in flow_pb2.Flow.DESCRIPTOR.fields if f.number >= 1_000_000)


def response_dict(response: observer_pb2.GetFlowsResponse, flowscope_fields: bool = False) -> dict:
    out = json_format.MessageToDict(response, preserving_proto_field_name=True)
    if not flowscope_fields and "flow" in out:
        for name in FLOWSCOPE_FIELDS:
            out["flow"].pop(name, None)
    return out


def flow_response(flow: flow_pb2.Flow) -> observer_pb2.GetFlowsResponse:
    """The response Hubble would send for `flow`: node name and time copied from the flow."""
    response = observer_pb2.GetFlowsResponse(node_name=flow.node_name)
    response.flow.CopyFrom(flow)
    response.time.CopyFrom(flow.time)
    return response


def flow_dict(flow: flow_pb2.Flow, flowscope_fields: bool = False) -> dict:
    return response_dict(flow_response(flow), flowscope_fields)


def response_line(response: observer_pb2.GetFlowsResponse, flowscope_fields: bool = False) -> str:
    return json.dumps(response_dict(response, flowscope_fields), separators=(",", ":"), ensure_ascii=False)


def parse_line(line: str | bytes) -> observer_pb2.GetFlowsResponse:
    """One JSON line back into a GetFlowsResponse: a Hubble line, an export line, or our own with
    flowscope fields. Fields this build does not know are skipped; raises json_format.ParseError (a
    ValueError) on anything that is not a GetFlowsResponse."""
    return json_format.Parse(line, observer_pb2.GetFlowsResponse(), ignore_unknown_fields=True)
