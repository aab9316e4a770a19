"""The map of REAL demo-lab traffic: the lab's pods run their loops (deploy/lab/demo.yaml), the collector
captures them with the eBPF datapath, the flows go to an embedded store, and headless Chromium shows the
UI over it."""

from __future__ import annotations

import os
import pathlib
import time
import uuid

import pytest

from tests.fixtures.chromium import console_errors, wait_until

ROOT = pathlib.Path(__file__).resolve().parents[2]
DEMO = ROOT / "deploy" / "lab" / "demo.yaml"
SCREENSHOT = ROOT / "docs" / "images" / "service-map.png"
CY = "document.getElementById('service-map')._cyreg.cy"
EXPECTED_EDGES = {"edge:shop/frontend|shop/backend|8080|TCP|FORWARDED",
                  "edge:shop/frontend|world:api.example.com|80|TCP|FORWARDED",
                  "edge:shop/backend|data/database|6379|TCP|FORWARDED",
                  "edge:shop/frontend|kube-system/coredns|53|UDP|FORWARDED",
                  "edge:shop/backend|kube-system/coredns|53|UDP|FORWARDED"}


@pytest.mark.root
def test_map_of_the_demo_lab(lab_factory, collector_factory, chdb_dir, chromium):
    from storage import FlowWriter, open_store
    from ui.app import start

    lab = lab_factory(DEMO.read_text())
    run = collector_factory(lab)
    # every loop of the demo has run at least twice: HTTP (with its 500), redis, the world API
    run.wait_for(lambda f: f.l7.http.code == 500 and f.destination.namespace == "shop", count=2, timeout=60)
    run.wait_for(lambda f: f.l4.TCP.destination_port == 6379, count=4, timeout=30)
    run.wait_for(lambda f: f.l7.http.code == 200 and "api.example.com" in f.source_names, count=2, timeout=30)
    store = open_store(f"chdb://{chdb_dir}?database=uilab_{uuid.uuid4().hex[:10]}")
    store.migrate()
    server = None
    try:
        writer = FlowWriter(store)
        writer.write(run.snapshot())
        writer.close()
        now = time.time_ns()
        stored = {e.key for e in store.service_map(now - 300 * 10**9, now).edges}
        server = start(store, "127.0.0.1:0", refresh_s=60.0, pin_dir="/nonexistent")
        console_errors(chromium)
        chromium.get(server.url + "/")
        edges = wait_until(lambda: (lambda ids: ids if EXPECTED_EDGES <= set(ids) else None)(
            chromium.execute_script(f"return {CY}.edges().map(e => e.id())")),
            timeout=30, message="the demo's edges on the map")
        # drawn: every stored edge but the world's traffic with itself (neighbour discovery, multicast)
        assert len(edges) == len({k for k in stored if not (k[0] == k[1] and k[0].startswith("world:"))})
        nodes = set(chromium.execute_script(f"return {CY}.nodes().map(n => n.id())"))
        assert {"shop/frontend", "shop/backend", "data/database", "kube-system/coredns",
                "world:api.example.com", "ns:shop", "ns:data", "ns:kube-system"} <= nodes
        http = chromium.execute_script(
            f"return {CY}.getElementById('edge:shop/frontend|shop/backend|8080|TCP|FORWARDED').data()")
        assert http["requests"] > 0 and 0 < http["error_rate"] < 1  # /api/error answers 500
        # DNS: the resolvers' search-list NXDOMAINs are by design, not errors — both DNS edges in the
        # colour of forwarded traffic; and no edge of the world node to itself
        for client in ("shop/frontend", "shop/backend"):
            dns = chromium.execute_script(
                f"return {CY}.getElementById(arguments[0]).data()",
                f"edge:{client}|kube-system/coredns|53|UDP|FORWARDED")
            assert dns["requests"] > 0 and dns["error_rate"] == 0 and dns["color"] == "#2e7d32", dns
        self_edges = chromium.execute_script(
            f"return {CY}.edges().filter(e => e.source().id() === e.target().id()).map(e => e.id())")
        assert self_edges == []
        time.sleep(1)  # let the panels draw for the picture
        if os.environ.get("FLOWSCOPE_SCREENSHOT"):  # refreshes the README's picture
            SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
            chromium.find_element("tag name", "body").screenshot(str(SCREENSHOT))
        assert not console_errors(chromium)
    finally:
        if server:
            server.stop()
        store.drop_database()
