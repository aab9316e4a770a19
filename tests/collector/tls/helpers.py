"""What the TLS lab tests share: waiting for a run's L7 flows of one port, and the fields to compare
between a TLS run and the same client's plaintext run."""

from __future__ import annotations

import collections
import re
import time

from google.protobuf import json_format

from proto.flow import flow_pb2
from lab.testbed.wait import wait_for


def l7_flows(run, port: int, tls: bool) -> list[flow_pb2.Flow]:
    return run.snapshot(lambda f: f.Type == flow_pb2.L7 and f.l7_tls == tls and port in (
        f.l4.TCP.source_port, f.l4.TCP.destination_port))


def wait_count(run, port: int, tls: bool, count: int) -> list[flow_pb2.Flow]:
    try:
        wait_for(lambda: len(l7_flows(run, port, tls)) >= count, 15, f"{count} L7 flows on port {port}", 0.1)
    except AssertionError:
        pass  # the caller compares what arrived with what it expected, in its own words
    time.sleep(0.5)  # and nothing more (a duplicate from the other end would arrive now)
    return l7_flows(run, port, tls)


def responses_seen(flows: list[flow_pb2.Flow]) -> collections.Counter:
    return collections.Counter((re.sub(r"^\w+://[^/]+", "", f.l7.http.url), f.l7.http.code)
                               for f in flows if f.l7.type == flow_pb2.RESPONSE)


_ORIGIN = re.compile(r"\bhttps?://[^/ )]+")


def comparable(flow: flow_pb2.Flow, port: int) -> dict:
    """The fields a user reads, without what differs between any two runs (time, ids, client port,
    latency, the device's name) and what names the transport: the server port, the TLS mark, and the
    URL's origin (https inside TLS; a TLS client may name the certificate's host in :authority where a
    plaintext one names the address)."""
    flow = flow_pb2.Flow.FromString(flow.SerializeToString())
    for name in ("time", "uuid", "l7_tls", "interface"):
        flow.ClearField(name)
    flow.l7.latency_ns = 0
    flow.l4.TCP.source_port = flow.l4.TCP.destination_port = 0
    flow.l7.http.url = _ORIGIN.sub("ORIGIN", flow.l7.http.url)
    flow.Summary = re.sub(r" \d+ms ", " ", _ORIGIN.sub("ORIGIN", flow.Summary.removesuffix(" (TLS)")))
    for header in flow.l7.http.headers:
        header.value = header.value.replace(f":{port}", ":PORT")
    return json_format.MessageToDict(flow)


def assert_same_fields(tls: list[flow_pb2.Flow], tls_port: int, plain: list[flow_pb2.Flow], plain_port: int) -> None:
    seen_tls = sorted(map(str, (comparable(f, tls_port) for f in tls)))
    seen_plain = sorted(map(str, (comparable(f, plain_port) for f in plain)))
    diff = [(a, b) for a, b in zip(seen_tls, seen_plain) if a != b]
    assert not diff, f"first difference (TLS, plaintext): {diff[0]}"
    assert len(seen_tls) == len(seen_plain), f"{len(seen_tls)} TLS flows, {len(seen_plain)} plaintext flows"
