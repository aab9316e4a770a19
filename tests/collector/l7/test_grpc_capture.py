"""HTTP/2 and gRPC parsed from REAL traffic: a grpcio server and client (unary, server- and client-
streaming; OK and error statuses) and h2load against nginx (h2c, prior knowledge), captured in a
private namespace and replayed in 512-byte prefixes. Counts must equal the clients' and tshark's."""

from __future__ import annotations

import collections
import re
import sys

import pytest

from collector.l7 import ConnKey, L7Config, L7Dispatcher, grpc_call, grpc_status

from lab.testbed.netns import REPO, background, need, netns, run, tcpdump, wait_port
from lab.testbed.pcap import segments
from lab.apps.nginx import nginx_conf
from .capture import replay, tshark, tshark_values

pytestmark = pytest.mark.root

GRPC_PORT = 50051
GRPC_DEMO = str(REPO / "lab/apps/grpc_demo.py")
STATUS_NUMBERS = {"OK": 0, "NOT_FOUND": 5, "INVALID_ARGUMENT": 3}


def test_grpc_unary_and_streaming_calls(tmp_path):
    pcap = tmp_path / "grpc.pcap"
    with netns() as ns, background(ns, [sys.executable, GRPC_DEMO, "server",
                                        str(GRPC_PORT)], ready="READY"):
        with tcpdump(ns, pcap, f"tcp port {GRPC_PORT}"):
            lines = run(ns, [sys.executable, GRPC_DEMO, "client", str(GRPC_PORT)]).stdout.splitlines()
    client = collections.Counter((m, STATUS_NUMBERS[code]) for m, code in (line.split() for line in lines))
    assert sum(client.values()) == 26

    dispatcher = L7Dispatcher()
    result = replay(pcap, dispatcher, {GRPC_PORT})
    requests, responses = result.of("http2", False), result.of("http2", True)
    seen = collections.Counter((grpc_call(r.layer7.http)[1], grpc_status(r.layer7.http)) for r in responses)
    assert seen == client
    assert collections.Counter(grpc_call(r.layer7.http)[1] for r in requests) == collections.Counter(
        m for m, _ in client.elements())
    assert not any(r.partial for r in requests + responses)
    assert dispatcher.stats.parse_errors["http2"] == 0, dispatcher.stats.errors_by_kind
    first = requests[0].layer7.http
    assert (first.method, first.url, first.protocol) == ("POST", f"http://127.0.0.1:{GRPC_PORT}/demo.Echo/Say",
                                                        "HTTP/2")
    assert grpc_call(first) == ("demo.Echo", "Say")
    failed = next(r for r in responses if grpc_status(r.layer7.http) == 5)
    headers = {h.key: h.value for h in failed.layer7.http.headers}
    assert headers["grpc-message"] == "no such thing" and failed.layer7.http.code == 200
    assert all(r.layer7.latency_ns > 0 for r in responses)

    # tshark's HTTP/2 dissection agrees on calls per method and on grpc-status
    decode = [f"tcp.port=={GRPC_PORT},http2"]
    ts_paths = tshark_values(pcap, "http2.headers.path", "http2.headers.path", decode)
    assert collections.Counter(p.rsplit("/", 1)[1] for p in ts_paths) == collections.Counter(
        m for m, _ in client.elements())
    ts_status = []
    for names, values in tshark(pcap, 'http2.header.name == "grpc-status"', ["http2.header.name",
                                                                            "http2.header.value"], decode):
        ts_status += [int(v) for n, v in zip(names.split("|"), values.split("|")) if n == "grpc-status"]
    assert collections.Counter(ts_status) == collections.Counter(s for _, s in client.elements())

def test_a_connection_past_the_stream_budget_is_counted_and_logged_not_silent(tmp_path, caplog):
    # The datapath captures HTTP/2 whole, up to l7_budget bytes per connection, then nothing more: a
    # long-lived gRPC connection would go dark. The dispatcher must say so (stats and one warning).
    pcap = tmp_path / "grpc.pcap"
    with netns() as ns, background(ns, [sys.executable, GRPC_DEMO, "server",
                                        str(GRPC_PORT)], ready="READY"):
        with tcpdump(ns, pcap, f"tcp port {GRPC_PORT}"):
            assert len(run(ns, [sys.executable, GRPC_DEMO, "client", str(GRPC_PORT)]).stdout.splitlines()) == 26
    captured = sum(len(e[3]) for e in segments(pcap, {GRPC_PORT}) if e[0] == "data")
    whole = L7Dispatcher(L7Config(stream_budget=captured + 1024))  # well above it: no warning
    everything = replay(pcap, whole, {GRPC_PORT})
    assert len(everything.of("http2", True)) == 26 and not whole.stats.budget_exhausted

    budget = captured // 2
    kept = [e for e in segments(pcap, {GRPC_PORT}) if e[0] == "data"]
    seen = 0
    for i, event in enumerate(kept):  # what the kernel still sends: segments until the budget is spent
        seen += len(event[3])
        if seen >= budget:
            kept = kept[:i + 1]
            break
    limited = L7Dispatcher(L7Config(stream_budget=budget))
    with caplog.at_level("WARNING", logger="collector.l7.dispatcher"):
        records = [r for e in kept for r in limited.on_segment(ConnKey(*e[1]), *e[2:])]
    assert limited.stats.budget_exhausted == {"http2": 1}
    assert 0 < len([r for r in records if r.is_reply]) < 26
    warning = next(r.getMessage() for r in caplog.records if "capture budget" in r.getMessage())
    assert f"reached the capture budget of {budget} bytes" in warning and f":{GRPC_PORT}" in warning


def test_h2load_against_nginx_h2c(tmp_path):
    need("nginx"), need("h2load")
    port = 8090
    pcap = tmp_path / "h2.pcap"
    conf = nginx_conf(tmp_path, port - 1, port)
    with netns() as ns, background(ns, ["nginx", "-c", str(conf), "-p", str(tmp_path)]):
        wait_port(ns, port)
        # h2load bursts; on a busy machine tcpdump itself may drop packets, which voids the comparison
        # (not a parser failure): capture again, up to three times, until the capture is complete.
        for _attempt in range(3):
            with tcpdump(ns, pcap, f"tcp port {port}", strict=False) as capture:
                out = run(ns, ["h2load", "-n", "300", "-c", "3", "-m", "4",
                               f"http://127.0.0.1:{port}/ok", f"http://127.0.0.1:{port}/missing",
                               f"http://127.0.0.1:{port}/fail"]).stdout
            if capture["dropped"] == 0:
                break
        assert capture["dropped"] == 0, "tcpdump lost packets in three captures: the comparison is void"
    done = int(re.search(r"requests: \d+ total, \d+ started, (\d+) done", out).group(1))
    two, four, five = map(int, re.search(r"status codes: (\d+) 2xx, \d+ 3xx, (\d+) 4xx, (\d+) 5xx", out).groups())
    dispatcher = L7Dispatcher()
    result = replay(pcap, dispatcher, {port})
    responses = result.of("http2", True)
    codes = collections.Counter(r.layer7.http.code // 100 for r in responses)
    assert len(result.of("http2", False)) == done == 300
    assert (codes[2], codes[4], codes[5]) == (two, four, five)
    assert two and four and five
    assert dispatcher.stats.parse_errors["http2"] == 0, dispatcher.stats.errors_by_kind
    assert not any(r.partial for r in responses)
    ts_codes = tshark_values(pcap, "http2.headers.status", "http2.headers.status", [f"tcp.port=={port},http2"])
    assert collections.Counter(int(c) // 100 for c in ts_codes) == codes


def test_curl_h2c_upgrade_and_prior_knowledge(tmp_path):
    """curl --http2 asks for the h2c Upgrade on its first request (an HTTP/1.1 request answered on HTTP/2
    stream 1), then sends the next requests as HTTP/2 streams; the server is the `h2` library's."""
    need("curl")
    port = 8080
    pcap = tmp_path / "h2c.pcap"
    base = f"http://127.0.0.1:{port}"
    urls = [f"{base}/ok", f"{base}/missing", f"{base}/ok"]
    with netns() as ns, background(ns, [sys.executable, "tests/collector/l7/programs/h2c_server.py", str(port)],
                                    ready="READY"):
        with tcpdump(ns, pcap, f"tcp port {port}"):
            # one connection, three requests: the first upgrades, the next two are HTTP/2 streams 3 and 5
            out = run(ns, ["curl", "-s", "--http2", "-w", "%{http_code} %{http_version}\\n",
                           *[a for url in urls for a in ("-o", "/dev/null", url)]]).stdout.split("\n")
            codes = [line.split() for line in out if line.strip()]
            for url in urls:  # prior knowledge, a connection each (curl 7.88 fails reusing one with h2's server)
                out = run(ns, ["curl", "-s", "--http2-prior-knowledge", "-w", "%{http_code} %{http_version}",
                               "-o", "/dev/null", url]).stdout
                codes.append(out.split())
    assert codes == [["200", "2"], ["404", "2"], ["200", "2"]] * 2
    dispatcher = L7Dispatcher()
    result = replay(pcap, dispatcher, {port})
    requests = [r for _, r in result.records if not r.is_reply]
    responses = [r for _, r in result.records if r.is_reply]
    assert [(r.layer7.http.protocol, r.layer7.http.url) for r in requests] == [
        ("HTTP/1.1", f"{base}/ok"), ("HTTP/2", f"{base}/missing"), ("HTTP/2", f"{base}/ok"),
        ("HTTP/2", f"{base}/ok"), ("HTTP/2", f"{base}/missing"), ("HTTP/2", f"{base}/ok")]
    assert [(r.layer7.http.protocol, r.layer7.http.code, r.layer7.http.url) for r in responses] == [
        ("HTTP/2", int(code), url) for (code, _), url in zip(codes, urls * 2)]
    assert not dispatcher.stats.parse_errors and not any(r.partial for r in requests + responses)
