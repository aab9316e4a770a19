"""HTTPS requests seen by the TLS capture reach everything downstream that users read, as plaintext L7
flows do: Hubble's httpV2 RED metrics (request counts by method and status equal curl's own), storage
(a real clickhouse-server) and the JSON API over it, the UI's map and flow table in headless Chromium, and
`flowscope policy suggest --l7`, whose rules list the paths and method curl asked for inside TLS."""

from __future__ import annotations

import collections
import json
import subprocess
import sys
import time
import urllib.request

import pytest
import yaml
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families

from proto.flow import flow_pb2
from tests.collector.datapath.helpers import wait_listening
from tests.collector.tls.helpers import wait_count
from tests.collector.tls.test_tls_lab import curl, topology
from tests.fixtures.chromium import console_errors, wait_until
from tests.fixtures.clickhouse import stored
from tests.ui.test_browser import CY, grid_cells

pytestmark = pytest.mark.root

# Every path twice and /ok once more: counts differ by path and by status (200, 201, 418, 404).
PATHS = ["/ok", "/created", "/teapot", "/nothing/here"] * 2 + ["/ok"]
EDGE = "edge:shop/client|shop/web|8443|TCP|FORWARDED"


def scrape_requests(port: int) -> collections.Counter:
    """hubble_http_requests_total by (method, status) into namespace shop (its pods are bare: no workload
    label), from the metrics endpoint."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as resp:
        text = resp.read().decode()
    counts = collections.Counter()
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "hubble_http_requests_total" and sample.labels["destination_namespace"] == "shop":
                counts[(sample.labels["method"], int(sample.labels["status"]))] += int(sample.value)
    return counts


def api(base: str, path: str):
    with urllib.request.urlopen(base + path, timeout=30) as resp:
        return json.load(resp)


def rfc3339(t_ns: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t_ns // 10**9)) + f".{t_ns % 10**9:09d}Z"


def test_tls_requests_reach_metrics_storage_ui_and_policy_suggestions(
        lab_factory, collector_factory, nginx_tls, clickhouse_server, server_database, chromium, tmp_path):
    from collector.metrics import DEFAULT_METRICS, FlowMetrics, serve
    from ui.app import start
    from ui.json_api import create_http_api

    lab = lab_factory(topology(nginx_tls))
    run = collector_factory(lab, l7_tls=True)
    assert run.collector.tls is not None, "TLS capture did not start (see the log)"
    registry = CollectorRegistry()
    run.collector.observer.hooks.append(FlowMetrics(list(DEFAULT_METRICS), registry).observe)  # as the collector wires it
    metrics_server, metrics_port = serve(registry, "127.0.0.1:0")
    wait_listening(lab, "web", 8443)
    time.sleep(1.5)  # the capture's next /proc scan attaches to the libssl nginx maps
    since = time.time_ns()
    web = lab.pod("web").ipv4
    client = curl(lab, [f"https://{web}:8443{p}" for p in PATHS], "--http1.1")
    assert sum(client.values()) == len(PATHS)
    by_status = collections.Counter()
    for (_path, code), n in client.items():
        by_status[("GET", code)] += n
    flows = wait_count(run, 8443, True, 2 * len(PATHS))
    until = time.time_ns()
    assert len(flows) == 2 * len(PATHS) and all(f.Summary.endswith(" (TLS)") for f in flows)
    try:
        assert scrape_requests(metrics_port) == by_status  # request counts equal curl's, by method and status
    finally:
        metrics_server.shutdown()
        metrics_server.server_close()

    url = f"{clickhouse_server.url}/{server_database}"
    store = stored(url, run.snapshot())
    json_api = ui = None
    try:
        json_api = create_http_api(store)
        rows = api(json_api.url, "/api/v1/flows?protocol=http&since=1h&limit=1000")
        tls_rows = [r for r in rows if r["destination_port"] == 8443 or r["source_port"] == 8443]
        assert len(tls_rows) == 2 * len(PATHS) and all(r["summary"].endswith(" (TLS)") for r in tls_rows)
        responses = collections.Counter((r["http_url"].split(":8443", 1)[1], r["http_code"])
                                        for r in tls_rows if r["is_reply"])
        assert responses == client
        hubble = api(json_api.url, "/api/v1/flows?protocol=http&since=1h&limit=1000&format=hubble")
        assert sum(1 for h in hubble if h["flow"]["l7"]["http"]["url"].startswith(f"https://{web}:8443/")) == \
            2 * len(PATHS)
        red = api(json_api.url, "/api/v1/red?since=1h&namespace=shop")
        assert {p["workload"] for p in red} == {"web"}
        assert sum(p["requests"] for p in red) == len(PATHS)
        assert sum(p["client_errors"] for p in red) == sum(n for (_m, code), n in by_status.items() if code >= 400)
        edges = {e["id"]: e for e in api(json_api.url, "/api/v1/servicemap?since=1h")["edges"]}
        assert edges["shop/client->shop/web:8443/TCP/FORWARDED"]["detail__requests"] == len(PATHS)

        ui = start(store, "127.0.0.1:0", refresh_s=60.0, pin_dir="/nonexistent")
        console_errors(chromium)
        chromium.get(ui.url + "/?protocol=http")
        edge = wait_until(lambda: chromium.execute_script(f"const e = {CY}.getElementById(arguments[0]); "
                                                          "return e.length ? e.data() : null", EDGE),
                          timeout=30, message=f"{EDGE} on the map")
        assert edge["requests"] == len(PATHS)
        cells = wait_until(lambda: (lambda urls: urls if len(urls) >= 2 * len(PATHS) else None)(
            grid_cells(chromium, "http_url")), timeout=30, message="the TLS flows in the table")
        assert collections.Counter(u.split(":8443", 1)[1] for u in cells if ":8443/" in u) == \
            collections.Counter(p for p in PATHS for _ in range(2))
        assert not console_errors(chromium)
    finally:
        if ui:
            ui.stop()
        if json_api:
            json_api.stop()
        store.close()

    out_dir = tmp_path / "cilium"
    suggested = subprocess.run([sys.executable, "-m", "flowscope", "policy", "suggest", "--storage", url,
                                "--since", rfc3339(since - 10**9), "--until", rfc3339(until), "--lab-state",
                                lab.state_path, "--format", "cilium", "--l7", "-o", str(out_dir)],
                               capture_output=True, text=True, timeout=120)
    assert suggested.returncode == 0, suggested.stderr
    policy = yaml.safe_load((out_dir / "shop-web.yaml").read_text())
    (ingress,) = policy["spec"]["ingress"]
    (to_ports,) = ingress["toPorts"]
    assert to_ports["ports"] == [{"port": "8443", "protocol": "TCP"}]
    assert sorted((r["method"], r["path"]) for r in to_ports["rules"]["http"]) == sorted(
        ("GET", path) for path in set(PATHS))

