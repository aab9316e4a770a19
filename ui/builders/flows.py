"""Flow table rows and the details of one flow.

The grid shows storage's FlowPage rows (TABLE_COLUMNS) plus a readable `time`; the details panel shows
every set field of the flow (dotted paths) and its proto3 JSON with the proto field names, the form
`hubble observe -o jsonpb` and Hubble's flow logs use.
"""

from __future__ import annotations

import datetime

from google.protobuf import json_format

from proto.flow import flow_pb2

# Visible columns, in order; the rest of TABLE_COLUMNS stay in the row data for the details.
COLUMNS = (("time", "time"), ("verdict", "verdict"), ("src_namespace", "src ns"), ("src_pod", "src pod"),
           ("src_ip", "src ip"), ("src_port", "src port"), ("dst_namespace", "dst ns"), ("dst_pod", "dst pod"), ("dst_ip", "dst ip"),
           ("dst_port", "dst port"), ("protocol", "proto"), ("l7_proto", "L7"), ("http_method", "method"),
           ("http_url", "url"), ("http_code", "code"), ("dns_query", "dns query"), ("drop_reason", "drop"),
           ("latency_ns", "latency ns"), ("node", "node"), ("is_reply", "reply"))
SORT_ALIASES = {"time": "time_ns"}  # grid column -> store sort column


def format_time(ns: int) -> str:
    t = datetime.datetime.fromtimestamp(ns // 1_000_000_000, tz=datetime.timezone.utc)
    return t.strftime("%Y-%m-%d %H:%M:%S") + f".{ns % 1_000_000_000 // 1_000_000:03d}"


def column_defs() -> list[dict]:
    return [{"field": field, "headerName": header, "sortable": True} for field, header in COLUMNS]


def grid_rows(rows: list[dict]) -> list[dict]:
    """FlowPage rows with a readable UTC `time` (sorting on it sorts by time_ns)."""
    return [{**r, "time": format_time(r["time_ns"])} for r in rows]


def sort_from_model(sort_model: list[dict] | None, allowed) -> tuple[str, bool]:
    """AG Grid's sortModel -> (store column, descending); newest first when unsorted."""
    if not sort_model:
        return "time_ns", True
    col = SORT_ALIASES.get(sort_model[0].get("colId"), sort_model[0].get("colId"))
    if col not in allowed:
        return "time_ns", True
    return col, sort_model[0].get("sort") != "asc"


def flow_dict(flow: flow_pb2.Flow) -> dict:
    return json_format.MessageToDict(flow, preserving_proto_field_name=True)


def flow_json(flow: flow_pb2.Flow) -> str:
    return json_format.MessageToJson(flow, preserving_proto_field_name=True, indent=2)


def flow_fields(flow: flow_pb2.Flow) -> list[tuple[str, str]]:
    """Every set field as (dotted.path, value); list items are indexed (source.labels[0])."""
    out: list[tuple[str, str]] = []

    def walk(prefix: str, value) -> None:
        if isinstance(value, dict):
            for k, v in value.items():
                walk(f"{prefix}.{k}" if prefix else k, v)
        elif isinstance(value, list):
            for i, v in enumerate(value):
                walk(f"{prefix}[{i}]", v)
        else:
            out.append((prefix, str(value)))

    walk("", flow_dict(flow))
    return out
