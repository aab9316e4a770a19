"""HTTP inside TLS through the real TLS capture: curl in one lab pod, nginx in another, OpenSSL on both
ends. Every request appears once, with method, path and status, marked as TLS and carrying both pods'
labels, and with the same L7 fields as the same client's plaintext run seen by the TC datapath."""

from __future__ import annotations

import collections
import re
import time

import pytest
from google.protobuf import json_format

from proto.flow import flow_pb2
from tests.collector.datapath.helpers import wait_listening

pytestmark = pytest.mark.root

PATHS = ["/ok", "/created", "/teapot", "/nothing/here", "/ok"] * 4


def topology(nginx: str) -> dict:
    return {
        "namespaces": {"shop": {"labels": {"team": "shop"}}},
        "pods": [
            {"name": "client", "namespace": "shop", "labels": {"app": "client"}},
            {"name": "web", "namespace": "shop", "labels": {"app": "web", "tier": "front"}, "commands": [nginx]},
        ],
    }


def curl(lab, urls: list[str], *options: str, one_connection: bool = True) -> collections.Counter:
    """The requests in order, on one connection (else one curl each: curl 7.88 cannot reuse an h2c
    prior-knowledge connection); (path, status) as the client saw them."""
    lines = []
    for batch in [urls] if one_connection else [[url] for url in urls]:
        out = lab.exec("client", ["curl", "-sk", *options, "-w", "%{url_effective} %{http_code}\\n",
                                  *sum((["-o", "/dev/null", url] for url in batch), [])])
        assert out.returncode == 0, out.stderr
        lines += out.stdout.splitlines()
    return collections.Counter((re.sub(r"^\w+://[^/]+", "", url), int(code))
                               for url, code in (line.split() for line in lines))


def l7_flows(run, port: int, tls: bool) -> list[flow_pb2.Flow]:
    return run.snapshot(lambda f: f.Type == flow_pb2.L7 and f.l7_tls == tls and port in (
        f.l4.TCP.source_port, f.l4.TCP.destination_port))


def wait_count(run, port: int, tls: bool, count: int) -> list[flow_pb2.Flow]:
    deadline = time.monotonic() + 15
    while len(flows := l7_flows(run, port, tls)) < count and time.monotonic() < deadline:
        time.sleep(0.1)
    time.sleep(0.5)  # and nothing more (a duplicate from the other end would arrive now)
    return l7_flows(run, port, tls)


def responses_seen(flows: list[flow_pb2.Flow]) -> collections.Counter:
    return collections.Counter((re.sub(r"^\w+://[^/]+", "", f.l7.http.url), f.l7.http.code)
                               for f in flows if f.l7.type == flow_pb2.RESPONSE)


def comparable(flow: flow_pb2.Flow, port: int) -> dict:
    """The fields a user reads, without what differs between any two runs (time, ids, client port,
    latency, the device's name) and what names the transport (server port, TLS mark, and the scheme
    HTTP/2's :scheme gives: https inside TLS)."""
    flow = flow_pb2.Flow.FromString(flow.SerializeToString())
    for name in ("time", "uuid", "l7_tls", "interface"):
        flow.ClearField(name)
    flow.l7.latency_ns = 0
    flow.l4.TCP.source_port = flow.l4.TCP.destination_port = 0
    flow.l7.http.url = flow.l7.http.url.replace(f":{port}", ":PORT").replace("https://", "http://")
    flow.Summary = re.sub(r" \d+ms ", " ", flow.Summary.removesuffix(" (TLS)").replace(f":{port}", ":PORT")
                          .replace("https://", "http://"))
    for header in flow.l7.http.headers:
        header.value = header.value.replace(f":{port}", ":PORT")
    return json_format.MessageToDict(flow)


@pytest.mark.parametrize("version, tls_options, plain_port, plain_options", [
    ("HTTP/1.1", ["--http1.1"], 8080, ["--http1.1"]),
    ("HTTP/2", ["--http2"], 8000, ["--http2-prior-knowledge"]),
])
def test_https_requests_are_seen_like_plaintext(lab_factory, collector_factory, nginx_tls, version, tls_options,
                                                plain_port, plain_options):
    """One TLS connection carrying every request (keep-alive; one HPACK context for HTTP/2)."""
    lab = lab_factory(topology(nginx_tls))
    run = collector_factory(lab, l7_tls=True)
    assert run.collector.tls is not None, "TLS capture did not start (see the log)"
    for port in (8443, 8080, 8000):
        wait_listening(lab, "web", port)
    time.sleep(1.5)  # the capture's next /proc scan attaches to the libssl nginx maps
    web = lab.pod("web").ipv4

    client = curl(lab, [f"https://{web}:8443{p}" for p in PATHS], *tls_options)
    assert sum(client.values()) == len(PATHS)
    tls = wait_count(run, 8443, True, 2 * len(PATHS))
    assert responses_seen(tls) == client
    assert len(tls) == 2 * len(PATHS)
    for flow in tls:
        assert flow.l7.http.protocol == version
        assert flow.Summary.endswith(" (TLS)")
        assert {flow.source.pod_name, flow.destination.pod_name} == {lab.pod("client").name, lab.pod("web").name}
        web_end = flow.destination if flow.l7.type == flow_pb2.REQUEST else flow.source
        assert "k8s:tier=front" in web_end.labels
        assert web_end.namespace == "shop"
    requests = [f for f in tls if f.l7.type == flow_pb2.REQUEST]
    assert collections.Counter(f.l7.http.method for f in requests) == {"GET": len(PATHS)}
    assert all(f.l7.latency_ns > 0 for f in tls if f.l7.type == flow_pb2.RESPONSE)

    assert curl(lab, [f"http://{web}:{plain_port}{p}" for p in PATHS], *plain_options,
                one_connection=version == "HTTP/1.1") == client
    plain = wait_count(run, plain_port, False, 2 * len(PATHS))
    seen_tls = sorted(map(str, (comparable(f, 8443) for f in tls)))
    seen_plain = sorted(map(str, (comparable(f, plain_port) for f in plain)))
    diff = [(a, b) for a, b in zip(seen_tls, seen_plain) if a != b]
    assert not diff, f"first difference (TLS, plaintext): {diff[0]}"
    assert len(seen_tls) == len(seen_plain)
