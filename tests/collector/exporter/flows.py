"""Flows for exporter tests and how to read an export file back (plain and gzipped lines)."""

from __future__ import annotations

import gzip
import pathlib
import time

from google.protobuf import json_format

from proto.flow import flow_pb2
from proto.observer import observer_pb2
from tests.relay.nodes import make_flow


def sample_flows(n: int, t0: int | None = None) -> list[flow_pb2.Flow]:
    """n flows alternating shop -> shop (TCP 8080, forwarded) and shop -> data (UDP 53, dropped)."""
    t0 = t0 if t0 is not None else time.time_ns() - 60_000_000_000
    flows = []
    for i in range(n):
        if i % 2:
            flow = make_flow(t0 + i * 1000, "backend-0", "db-0", namespace="data", port=53, protocol="udp",
                             verdict=flow_pb2.DROPPED)
        else:
            flow = make_flow(t0 + i * 1000, f"frontend-{i}", "backend-0", port=8080)
        flow.node_name = "node-a"
        flows.append(flow)
    return flows


def read_lines(path: pathlib.Path) -> list[str]:
    opener = gzip.open if path.name.endswith(".gz") else open
    with opener(path, "rt") as f:
        return f.read().splitlines()


def read_responses(*paths: pathlib.Path) -> list[observer_pb2.GetFlowsResponse]:
    """Every line as a GetFlowsResponse, parsed strictly (an unknown field fails)."""
    return [json_format.Parse(line, observer_pb2.GetFlowsResponse()) for p in paths for line in read_lines(p)]
