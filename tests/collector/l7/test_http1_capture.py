"""HTTP/1.x parsed from REAL traffic: python http.server and nginx in a private namespace, curl, a raw
socket client (split heads, pipelining) and wrk as clients, tcpdump capturing, the capture replayed into
the dispatcher in 512-byte prefixes. Counts must equal the clients' own, and tshark's."""

from __future__ import annotations

import collections
import re
import sys

import pytest

from collector.l7 import L7Config, L7Dispatcher

from lab.apps.nginx import nginx_conf
from lab.testbed.netns import background, need, netns, run, tcpdump, wait_port
from .capture import python, replay, tshark_values
pytestmark = pytest.mark.root

PORT = 8080


def _status_counts(records) -> collections.Counter:
    return collections.Counter((r.layer7.http.method, r.layer7.http.code) for r in records)


def test_python_server_curl_and_raw_clients(tmp_path):
    need("curl")
    pcap = tmp_path / "http.pcap"
    body = tmp_path / "body.bin"
    body.write_bytes(b"p" * 3000)
    with netns() as ns, background(ns, [sys.executable, "tests/collector/l7/programs/http_server.py", str(PORT)],
                                    ready="READY"):
        with tcpdump(ns, pcap, f"tcp port {PORT}"):
            base = f"http://127.0.0.1:{PORT}"
            # keep-alive: one curl, several URLs on one connection
            urls = [f"{base}/ok?token=abc", f"{base}/missing", f"{base}/fail", f"{base}/chunked", f"{base}/big",
                    f"{base}/ok"]
            curl = run(ns, ["curl", "-s", "-w", "%{http_code} %{num_connects}\\n",
                            *[a for url in urls for a in ("-o", "/dev/null", url)]]).stdout.split("\n")
            head = run(ns, ["curl", "-s", "-I", "-o", "/dev/null", "-w", "%{http_code}", f"{base}/ok"]).stdout
            post = run(ns, ["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "--data-binary",
                            f"@{body}", f"{base}/submit"]).stdout
            # Expect: 100-continue -> an interim "100 Continue" before the final response
            expect = run(ns, ["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "-H", "Expect: 100-continue",
                              "--data-binary", f"@{body}", f"{base}/submit"]).stdout
            http10 = run(ns, ["curl", "-s", "-0", "-o", "/dev/null", "-w", "%{http_code}", f"{base}/big"]).stdout
            raw = python(ns, "http_raw_client", str(PORT)).stdout.split()
    client_codes = collections.Counter()
    for line in curl:
        if line.strip():
            client_codes[("GET", int(line.split()[0]))] += 1
    assert sum(int(line.split()[1]) for line in curl if line.strip()) == 1, "curl should reuse one connection"
    client_codes[("HEAD", int(head))] += 1
    client_codes[("POST", int(post))] += 1
    client_codes[("POST", int(expect))] += 1
    client_codes[("GET", int(http10))] += 1
    # raw client: split request (GET 200), long cookie (GET 200), pipelined GET 200, 404, HEAD 200, GET 200, 500
    assert raw == ["200", "200", "200", "404", "200", "200", "500"], raw
    for method, code in zip(["GET", "GET", "GET", "GET", "HEAD", "GET", "GET"], raw):
        client_codes[(method, int(code))] += 1

    dispatcher = L7Dispatcher(L7Config(http_ports=frozenset({PORT})))
    result = replay(pcap, dispatcher, {PORT})
    requests, responses = result.of("http", False), result.of("http", True)
    assert _status_counts(responses) == client_codes
    assert collections.Counter(r.layer7.http.method for r in requests) == collections.Counter(
        m for m, _ in client_codes.elements())
    # only the request whose head is longer than the prefix is partial: method and url known, rest unseen
    partial = [r for r in requests + responses if r.partial]
    assert [r.summary for r in partial] == ["HTTP/1.1 GET http://cookie.test/ok"]
    # counted, not hidden: that truncated head; and when the chunked body's writes were coalesced into one
    # segment, its next chunk-size line lay past the prefix (the next response is found again)
    errors = dict(dispatcher.stats.errors_by_kind)
    assert errors.pop(("http", "truncated")) == 1 and errors.get(("http", "lost_sync"), 0) <= 2, errors
    assert set(errors) <= {("http", "lost_sync")}
    # Hubble shape: url without the query string, protocol, latency, redacted headers, summary
    first = requests[0].layer7.http
    assert first.url == f"http://127.0.0.1:{PORT}/ok" and first.protocol == "HTTP/1.1"
    assert {h.key: h.value for h in first.headers}["user-agent"] == "HUBBLE_REDACTED"
    assert requests[0].summary == f"HTTP/1.1 GET http://127.0.0.1:{PORT}/ok"
    assert all(r.layer7.latency_ns > 0 for r in responses)
    assert re.fullmatch(rf"HTTP/1.1 200 \d+ms \(GET http://127.0.0.1:{PORT}/ok\)", responses[0].summary)
    assert any(r.layer7.http.url == "http://split.test:%d/ok" % PORT for r in requests)
    assert [r.layer7.http.url for r in requests].count("http://pipe.test/ok") == 2
    assert [r.layer7.http.protocol for r in requests].count("HTTP/1.0") == 1  # curl -0, body until close

    # tshark's own dissection agrees on requests per method and responses per status
    decode = [f"tcp.port=={PORT},http"]
    ts_requests = collections.Counter(tshark_values(pcap, "http.request", "http.request.method", decode))
    assert ts_requests == collections.Counter(r.layer7.http.method for r in requests)
    # tshark loses the pipelined connection's HEAD response (it reads the next response as its body), so
    # responses are compared on the other connections; the client's own count covered the pipeline above
    pipe_stream = tshark_values(pcap, 'http.host == "pipe.test"', "tcp.stream", decode)[0]
    ts_codes = collections.Counter(map(int, tshark_values(pcap, f"http.response && tcp.stream != {pipe_stream}",
                                                          "http.response.code", decode)))
    assert ts_codes.pop(100) == 1  # the interim "100 Continue": not a record of its own (the final one is)
    pipe_ports = {k.client_port for k, r in result.records if r.layer7.http.url.startswith("http://pipe.test")}
    assert ts_codes == collections.Counter(r.layer7.http.code for k, r in result.records
                                           if r.is_reply and k.client_port not in pipe_ports)


WRK_SCRIPT = """
local paths = {"/ok", "/missing", "/fail", "/ok"}
local i = 0
request = function() i = i + 1; return wrk.format("GET", paths[(i % 4) + 1]) end
delay = function() return 1 end  -- ms between requests: tcpdump must keep up, or the comparison is void
done = function(summary, latency, requests)
  io.write(string.format("WRK %d %d\\n", summary.requests, summary.errors.status))
end
"""


def wrk_median_us(out: str) -> float:
    value, unit = re.search(r"^\s+50%\s+([\d.]+)(us|ms|s)$", out, re.M).groups()
    return float(value) * {"us": 1, "ms": 1000, "s": 1_000_000}[unit]


def median_us(records) -> float:
    latencies = sorted(r.layer7.latency_ns for r in records)
    return latencies[len(latencies) // 2] / 1000


def test_wrk_against_python_server_counts_and_latency(tmp_path):
    """Several keep-alive connections, a 200/404/500 mix, each response delayed 5 ms by the server: the
    records' median latency (request segment -> response segment) is within 20% of wrk's own median."""
    need("wrk")
    pcap = tmp_path / "wrk.pcap"
    script = tmp_path / "mix.lua"
    script.write_text(WRK_SCRIPT.replace('"/ok", "/missing", "/fail", "/ok"',
                                         '"/ok?delay_ms=5", "/missing?delay_ms=5", "/fail?delay_ms=5", "/ok?delay_ms=5"'))
    with netns() as ns, background(ns, [sys.executable, "tests/collector/l7/programs/http_server.py", str(PORT)],
                                    ready="READY"):
        with tcpdump(ns, pcap, f"tcp port {PORT}", snaplen=2048):  # small frames: tcpdump keeps up
            out = run(ns, ["wrk", "-t1", "-c4", "-d1s", "--latency", "-s", str(script),
                           f"http://127.0.0.1:{PORT}/"]).stdout
    wrk_total, wrk_non2xx = map(int, re.search(r"WRK (\d+) (\d+)", out).groups())
    dispatcher = L7Dispatcher(L7Config(http_ports=frozenset({PORT})))
    responses = replay(pcap, dispatcher, {PORT}).of("http", True)
    codes = collections.Counter(r.layer7.http.code for r in responses)
    assert wrk_total <= len(responses) <= wrk_total + 4, (wrk_total, codes)
    assert wrk_non2xx <= codes[404] + codes[500] <= wrk_non2xx + 4 and set(codes) == {200, 404, 500}
    assert dispatcher.stats.parse_errors["http"] == 0, dispatcher.stats.errors_by_kind
    ours, theirs = median_us(responses), wrk_median_us(out)
    assert abs(ours - theirs) <= 0.2 * theirs, f"median latency: records {ours:.0f} us, wrk {theirs:.0f} us"


def test_wrk_against_nginx_keepalive(tmp_path):
    need("nginx"), need("wrk")
    pcap = tmp_path / "wrk.pcap"
    script = tmp_path / "mix.lua"
    script.write_text(WRK_SCRIPT)
    conf = nginx_conf(tmp_path, PORT, PORT + 1)
    with netns() as ns, background(ns, ["nginx", "-c", str(conf), "-p", str(tmp_path)]):
        wait_port(ns, PORT)
        with tcpdump(ns, pcap, f"tcp port {PORT}", snaplen=2048):  # small frames: tcpdump keeps up
            out = run(ns, ["wrk", "-t1", "-c4", "-d1s", "--latency", "-s", str(script),
                           f"http://127.0.0.1:{PORT}/"]).stdout
    wrk_total, wrk_non2xx = map(int, re.search(r"WRK (\d+) (\d+)", out).groups())
    dispatcher = L7Dispatcher(L7Config(http_ports=frozenset({PORT})))
    result = replay(pcap, dispatcher, {PORT})
    responses = result.of("http", True)
    codes = collections.Counter(r.layer7.http.code for r in responses)
    # wrk counts responses it completed; up to one in-flight request per connection may finish unseen by it
    assert wrk_total <= len(responses) <= wrk_total + 4, (wrk_total, codes)
    assert wrk_non2xx <= codes[404] + codes[500] <= wrk_non2xx + 4
    assert set(codes) == {200, 404, 500}
    assert dispatcher.stats.parse_errors["http"] == 0, dispatcher.stats.errors_by_kind
    ts_codes = collections.Counter(map(int, tshark_values(pcap, "http.response", "http.response.code",
                                                          [f"tcp.port=={PORT},http"])))
    assert ts_codes == codes
    # on loopback nginx answers in tens of microseconds: the wire latency the records measure is a part
    # of what wrk measures (its own event loop and syscalls); the latency comparison is the test above
    assert 0 < median_us(responses) <= wrk_median_us(out)
