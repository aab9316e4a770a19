"""Hubble's JSON flow lines — what `hubble observe -o json` prints and Hubble's exporter writes: one
GetFlowsResponse in proto3 JSON with the .proto field names (`{"flow":{...},"node_name":"...","time":"..."}`).
Every flowscope surface that speaks this format (the CLI, the JSON API, exporters) goes through here."""

from __future__ import annotations

import json

from google.protobuf import json_format

from proto.flow import flow_pb2
from proto.observer import observer_pb2


def response_dict(response: observer_pb2.GetFlowsResponse) -> dict:
    return json_format.MessageToDict(response, preserving_proto_field_name=True)


def flow_response(flow: flow_pb2.Flow) -> observer_pb2.GetFlowsResponse:
    """The response Hubble would send for `flow`: node name and time copied from the flow."""
    response = observer_pb2.GetFlowsResponse(node_name=flow.node_name)
    response.flow.CopyFrom(flow)
    response.time.CopyFrom(flow.time)
    return response


def flow_dict(flow: flow_pb2.Flow) -> dict:
    return response_dict(flow_response(flow))


def response_line(response: observer_pb2.GetFlowsResponse) -> str:
    return json.dumps(response_dict(response), separators=(",", ":"), ensure_ascii=False)
