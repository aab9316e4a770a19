"""The whole UI in real headless Chromium over a store holding the demo lab's flows."""

from __future__ import annotations

import datetime
import json
import os
import pathlib
import time
import urllib.parse
import uuid
from typing import Callable

import pytest
from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.by import By

from tests.fixtures.chromium import console_errors, wait_until
from lab.testbed.flowgen import demo_flows, legacy_flows

NS = 1_000_000_000
ROUNDS, LEGACY_ROUNDS = 60, 30
SCREENSHOT = pathlib.Path(__file__).resolve().parents[2] / "docs" / "images" / "service-map.png"


@pytest.fixture(scope="module")
def lab_store(chdb_dir):
    from storage import FlowWriter, open_store
    url = f"chdb://{chdb_dir}?database=ui_{uuid.uuid4().hex[:10]}"
    store = open_store(url)
    store.migrate()
    now = time.time_ns()
    writer = FlowWriter(store)
    writer.write(demo_flows(now - 150 * NS, ROUNDS))
    writer.write(legacy_flows(now - 3 * 3600 * NS, LEGACY_ROUNDS))
    writer.close()
    store.legacy_since = now - 3 * 3600 * NS - 60 * NS  # the test's own notes about what it stored
    yield store
    store.drop_database()


APPLIED = {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
           "metadata": {"name": "database-least-privilege", "namespace": "data"},
           "spec": {"podSelector": {"matchLabels": {"app": "database"}}, "policyTypes": ["Ingress"],
                    "ingress": [{"ports": [{"protocol": "TCP", "port": 6380}]}]}}


@pytest.fixture(scope="module")
def applied_pin_dir():
    """A pin dir whose registry holds an applied policy for data/database (an older one, port 6380)."""
    from enforcer.datapath.registry import AppliedPolicy, Registry, registry_path
    pin_dir = f"/sys/fs/bpf/fsui-{uuid.uuid4().hex[:8]}"
    registry = Registry(registry_path(pin_dir))
    policy = AppliedPolicy(id=7, kind="NetworkPolicy", namespace="data", name="database-least-privilege",
                           document=APPLIED)
    registry.policies[policy.key] = policy
    registry.save()
    yield pin_dir
    registry.path.unlink()


@pytest.fixture(scope="module")
def ui_url(lab_store, applied_pin_dir):
    from ui.app import start
    server = start(lab_store, "127.0.0.1:0", refresh_s=2.0, pin_dir=applied_pin_dir)
    yield server.url
    server.stop()


@pytest.fixture
def browser(chromium, ui_url):
    console_errors(chromium)  # start each test with an empty console
    yield chromium
    errors = console_errors(chromium)
    assert not errors, f"browser console errors: {errors}"


CY = "document.getElementById('service-map')._cyreg.cy"


def map_elements(driver) -> dict:
    return driver.execute_script(
        f"const cy = {CY}; return {{nodes: cy.nodes().map(n => n.id()), "
        "edges: cy.edges().map(e => e.id())};")


def edge_keys(store, since=None, until=None) -> set[str]:
    from ui.builders.service_map import edge_selection
    now = time.time_ns()
    smap = store.service_map(since or now - 300 * NS, until or now)
    return {edge_selection(e) for e in smap.edges}


def open_map(driver, url: str, min_edges: int = 1, timeout: float = 30.0) -> dict:
    driver.get(url)
    return wait_until(lambda: (lambda els: els if len(els["edges"]) >= min_edges else None)(map_elements(driver)),
                      timeout=timeout, message="the service map's edges")


def total_flows(driver) -> int | None:
    text = driver.find_element(By.ID, "flows-total").text
    return int(text.split()[0]) if text.endswith("flows") else None


def grid_cells(driver, column: str) -> list[str]:
    """`column` of the rows the grid has loaded (from its API: off-screen columns are not in the DOM)."""
    return [str(v) for v in driver.execute_script(
        "const out = []; dash_ag_grid.getApi('flows-grid').forEachNode(n => { if (n.data) "
        "out.push(n.data[arguments[0]]); }); return out;", column)]


def rendered_position(driver, element_id: str) -> tuple[float, float]:
    return tuple(driver.execute_script(
        f"const el = {CY}.getElementById(arguments[0]); "
        "const p = el.isEdge() ? el.renderedMidpoint() : el.renderedPosition(); return [p.x, p.y];",
        element_id))


def click_element(driver, element_id: str, done: Callable[[], bool]) -> None:
    """A real mouse click on a node or edge of the canvas, at its rendered position once the map has
    settled; clicked again (as a user would) if a refresh swallowed the click."""
    def settled():
        first = rendered_position(driver, element_id)
        time.sleep(0.3)
        return first == rendered_position(driver, element_id) and first

    canvas = driver.find_element(By.ID, "service-map")
    for _ in range(3):
        x, y = wait_until(settled, message=f"{element_id} at a stable position")
        size = canvas.size
        ActionChains(driver).move_to_element_with_offset(canvas, int(x - size["width"] / 2),
                                                         int(y - size["height"] / 2)).click().perform()
        try:
            wait_until(done, timeout=5, message="the click's effect")
            return
        except AssertionError:
            continue
    raise AssertionError(f"clicking {element_id} did not select it: "
                         f"{driver.find_element(By.ID, 'selection-text').text}")


def test_map_shows_the_lab_workloads_and_edges(browser, ui_url, lab_store, tmp_path):
    els = open_map(browser, ui_url + "/", min_edges=6)
    assert {"shop/frontend", "shop/backend", "data/database", "kube-system/coredns",
            "world:api.example.com", "ns:shop", "ns:data", "ns:kube-system"} <= set(els["nodes"])
    assert set(els["edges"]) == edge_keys(lab_store) and len(els["edges"]) >= 6
    classes = browser.execute_script(
        f"const cy = {CY}; return Object.fromEntries(cy.nodes().map(n => [n.id(), n.classes().join(' ')]));")
    assert classes["kube-system/coredns"] == "dns" and classes["world:api.example.com"] == "world"
    assert browser.execute_script(f"return {CY}.getElementById('shop/frontend').parent().id()") == "ns:shop"
    dropped = "edge:shop/frontend|data/database|6379|TCP|DROPPED"
    assert browser.execute_script(f"return {CY}.getElementById(arguments[0]).hasClass('dropped')", dropped)
    # the panels: HTTP RED per server workload, top DNS queries with NXDOMAINs, drops by reason
    def plot(graph_id):
        return browser.execute_script(
            "const g = document.querySelector(`#${arguments[0]} .js-plotly-plot`); "
            "return g && g.data && g.data.map(t => [t.name, t.y, t.x]);", graph_id)
    red = wait_until(lambda: plot("http-red"), message="the RED panel")
    assert {"shop/backend req/s", "shop/backend error %", "shop/backend p95"} <= {t[0] for t in red}
    errors = next(t for t in red if t[0] == "shop/backend error %")[1]
    assert max(errors) == 25.0  # 1 of the frontend's 4 calls is /api/error (500)
    dns = wait_until(lambda: plot("dns-top"), message="the DNS panel")
    nxdomain = dict(zip(dns[1][1], dns[1][2]))
    assert nxdomain["nope.shop.svc.cluster.local."] == ROUNDS // 5 and nxdomain["api.example.com."] == 0
    drops = wait_until(lambda: plot("drops-by-reason"), message="the drops panel")
    assert dict(zip(drops[0][1], drops[0][2])) == {"POLICY_DENIED": ROUNDS // 5}
    shot = tmp_path / "map.png"
    browser.save_screenshot(str(shot))
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    if os.environ.get("FLOWSCOPE_SCREENSHOT"):  # refreshes the README's picture: make screenshot
        SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
        browser.find_element(By.TAG_NAME, "body").screenshot(str(SCREENSHOT))


def test_arrowheads_stop_short_of_the_workload_names(browser, ui_url):
    """No arrowhead lies on its target's name: ended at the node, an arrow from below (into
    data/database and kube-system/coredns) was drawn onto the label under the node. The arrowhead is
    taken as the last 12 px of the edge; the label as its box less cytoscape's 3 px of padding."""
    open_map(browser, ui_url + "/", min_edges=6)
    overlaps = browser.execute_script(
        f"const cy = {CY}; const out = [];"
        "cy.edges().forEach(e => { if (e.source().id() === e.target().id()) return;"
        "  const t = e.targetEndpoint(), s = e.sourceEndpoint();"
        "  const len = Math.hypot(s.x - t.x, s.y - t.y) || 1;"
        "  const b = e.target().boundingBox({includeNodes: false, includeEdges: false, includeLabels: true});"
        "  for (let d = 0; d <= 12; d += 1) {"
        "    const x = t.x + (s.x - t.x) * d / len, y = t.y + (s.y - t.y) * d / len;"
        "    if (b.w > 0 && x > b.x1 + 3 && x < b.x2 - 3 && y > b.y1 + 3 && y < b.y2 - 3) {"
        "      out.push(e.id()); break; } } });"
        "return [out, cy.edges().length];")
    assert overlaps[1] >= 6 and overlaps[0] == [], f"arrowheads on labels: {overlaps[0]}"


def test_clicking_an_edge_filters_the_table_to_its_flows(browser, ui_url, lab_store):
    from storage import MapEdge
    open_map(browser, ui_url + "/", min_edges=6)
    wait_until(lambda: total_flows(browser), message="the unfiltered flow count")
    edge_id = "edge:shop/frontend|shop/backend|8080|TCP|FORWARDED"
    click_element(browser, edge_id, lambda: "edge shop/frontend -> shop/backend TCP/8080 FORWARDED" in
                  browser.find_element(By.ID, "selection-text").text)
    edge = MapEdge("shop/frontend", "shop/backend", 8080, "TCP", "FORWARDED", 0, 0, 0, 0, 0.0, None, None, None)
    expected = lab_store.flows_page(edge=edge).total
    assert expected == ROUNDS * 4 * 4  # 4 calls a round, SYN + SYN-ACK + request + response each
    wait_until(lambda: total_flows(browser) == expected,
               message=f"{expected} flows of the edge (selection: "
                       f"{browser.find_element(By.ID, 'selection-text').text}, {total_flows(browser)} flows)")
    pods = wait_until(lambda: list(zip(grid_cells(browser, "src_pod"), grid_cells(browser, "dst_pod"))),
                      message="grid rows")
    for src, dst in pods:
        assert {src.split("-")[0], dst.split("-")[0]} == {"frontend", "backend"}, (src, dst)
    assert "sel=edge:shop/frontend|shop/backend|8080|TCP|FORWARDED" in urllib.parse.unquote(browser.current_url)
    # a row's details: every field, and the flow as proto3 JSON with proto field names
    def click_first_row():  # retried: a live refresh may redraw the rows under the click
        browser.find_elements(By.CSS_SELECTOR, "#flows-grid .ag-center-cols-container .ag-row "
                                               "[col-id='verdict']")[0].click()
        return True
    wait_until(click_first_row, message="a row to click")
    text = wait_until(lambda: browser.find_element(By.ID, "flow-json").get_attribute("textContent"),
                      message="the flow's JSON")
    flow = json.loads(text)
    assert flow["verdict"] == "FORWARDED" and flow["node_name"] == "lab-node"
    assert {flow["source"]["namespace"], flow["destination"]["namespace"]} == {"shop"}
    assert "traffic_direction" in flow and "trafficDirection" not in flow
    details = browser.find_element(By.ID, "flow-details").text
    assert "source.pod_name" in details and "l4.TCP.destination_port" in details


def test_choosing_a_past_window_shows_that_windows_flows(browser, ui_url, lab_store):
    open_map(browser, ui_url + "/", min_edges=6)
    browser.find_element(By.CSS_SELECTOR, "#window input[value='custom']").click()
    since = datetime.datetime.fromtimestamp(lab_store.legacy_since / NS, datetime.timezone.utc)
    until = since + datetime.timedelta(minutes=10)
    for field, value in (("since", since), ("until", until)):
        box = browser.find_element(By.ID, field)
        box.clear()
        box.send_keys(value.strftime("%Y-%m-%dT%H:%M:%SZ") + "\n")
    legacy = "edge:shop/backend|data/database|5432|TCP|FORWARDED"
    wait_until(lambda: map_elements(browser)["edges"] == [legacy], message="only the legacy edge")
    wait_until(lambda: total_flows(browser) == LEGACY_ROUNDS * 2, message=f"{LEGACY_ROUNDS * 2} legacy flows")
    ports = wait_until(lambda: list(zip(grid_cells(browser, "src_port"), grid_cells(browser, "dst_port"))),
                       message="grid rows")
    assert ports and all("5432" in pair for pair in ports), ports
    # the address bar carries the view: opening it again shows the same window
    shared = browser.current_url
    assert "window=custom" in shared and "since=" in shared
    open_map(browser, shared)
    assert map_elements(browser)["edges"] == [legacy]
    wait_until(lambda: total_flows(browser) == LEGACY_ROUNDS * 2, message="the shared link's flows")


def test_live_mode_shows_new_flows_without_reloading(browser, ui_url, lab_store):
    from storage import FlowWriter
    from lab.testbed.flowgen import FlowMaker, _peer
    open_map(browser, ui_url + "/", min_edges=6)
    before = wait_until(lambda: total_flows(browser), message="the flow count")
    maker = FlowMaker()
    writer = FlowWriter(lab_store)
    writer.write(maker.tcp(time.time_ns(), _peer("frontend"), _peer("database"), 9121))
    writer.close()
    new = "edge:shop/frontend|data/database|9121|TCP|FORWARDED"
    wait_until(lambda: new in map_elements(browser)["edges"], timeout=30, message="the new edge, live")
    wait_until(lambda: total_flows(browser) == before + 2, timeout=30, message=f"{before + 2} flows, live")


def test_a_shared_link_with_filters_narrows_map_and_table(browser, ui_url, lab_store):
    from ui.state import ViewState, flow_filters
    els = open_map(browser, ui_url + "/?ns=data&verdict=DROPPED")
    assert els["edges"] == ["edge:shop/frontend|data/database|6379|TCP|DROPPED"]
    expected = lab_store.count(flow_filters(ViewState(namespaces=("data",), verdicts=("DROPPED",))))
    assert expected == ROUNDS // 5
    wait_until(lambda: total_flows(browser) == expected, message=f"{expected} dropped flows")
    # the count answers first; the grid asks for its rows in a request of its own
    wait_until(lambda: set(grid_cells(browser, "verdict")) == {"DROPPED"}, message="only DROPPED rows")
    assert set(grid_cells(browser, "drop_reason")) == {"POLICY_DENIED"}
    # HTTP status narrows the table to the 500 responses
    open_map(browser, ui_url + "/?status=500&protocol=http")
    wait_until(lambda: set(grid_cells(browser, "http_code")) == {"500"}, message="only HTTP 500 rows")
    assert total_flows(browser) == ROUNDS


def test_what_changed_marks_new_edges(browser, ui_url):
    els = open_map(browser, ui_url + "/?changes=1", min_edges=6)
    added = browser.execute_script(f"return {CY}.edges('.added').map(e => e.id())")
    assert set(added) == set(els["edges"])  # the 5 minutes before had no traffic at all
    assert "new and 0 gone" in browser.find_element(By.ID, "map-summary").text


def test_policy_page_renders_suggestions_with_evidence(browser, ui_url):
    browser.get(ui_url + "/")
    wait_until(lambda: browser.find_element(By.ID, "nav-policies"), message="the navigation").click()
    yaml_text = wait_until(lambda: browser.find_element(By.ID, "policy-yaml").text, message="a suggested policy")
    assert "kind: NetworkPolicy" in yaml_text and "namespace: data" in yaml_text
    rows = browser.find_elements(By.CSS_SELECTOR, "#policy-evidence tr")
    assert len(rows) >= 2 and "flows, first" in rows[1].text
    diff = browser.find_element(By.ID, "policy-diff").text
    assert diff.startswith("--- applied\n+++ suggested") and "+  - Egress" in diff
    assert "-      port: 6380" in diff and "+      port: 6379" in diff, diff
    browser.find_element(By.ID, "policy-download-button").click()
    saved = pathlib.Path(browser.download_dir) / "data-database.yaml"
    wait_until(saved.exists, message=f"the downloaded {saved.name}")
    text = saved.read_text()
    assert text == yaml_text + "\n" or text.strip() == yaml_text.strip()
    assert "flowscope.io/evidence.ingress.0" in text


@pytest.fixture(scope="module")
def big_ui_url(chdb_dir):
    """500 workloads in 25 namespaces, 5,000 client -> server pairs."""
    from storage import FlowWriter, open_store
    from lab.testbed.flowgen import synthetic_flows
    from ui.app import start
    store = open_store(f"chdb://{chdb_dir}?database=uibig_{uuid.uuid4().hex[:10]}")
    store.migrate()
    writer = FlowWriter(store)
    for batch in synthetic_flows(time.time_ns() - 200 * NS, 20_000, span_s=180):
        writer.write(batch)
    writer.close()
    server = start(store, "127.0.0.1:0", refresh_s=60.0, with_policy=False)
    yield server.url
    server.stop()
    store.drop_database()


def test_a_500_workload_map_starts_collapsed_and_expands_on_click(browser, big_ui_url):
    els = open_map(browser, big_ui_url + "/", min_edges=100, timeout=60)
    assert len(els["nodes"]) == 25 and all(n.startswith("ns:ns-") for n in els["nodes"])
    assert "500 workloads" in browser.find_element(By.ID, "map-summary").text
    click_element(browser, "ns:ns-07",
                  lambda: sum(n.startswith("ns-07/") for n in map_elements(browser)["nodes"]) == 20)
    assert browser.execute_script(f"return {CY}.getElementById('ns-07/wl-007').parent().id()") == "ns:ns-07"


def test_the_token_in_the_url_becomes_a_session_cookie_and_leaves_the_address_bar(chromium, lab_store):
    from ui.app import start
    from ui.auth import COOKIE, Auth
    token = "browser-token-0123456789"
    server = start(lab_store, "127.0.0.1:0", auth=Auth.parse(token), with_policy=False)
    try:
        chromium.get(server.url + "/")
        assert "authentication required" in chromium.find_element(By.TAG_NAME, "body").text
        els = open_map(chromium, f"{server.url}/?token={token}")  # the map's callbacks run on the cookie
        assert els["edges"] and chromium.current_url == server.url + "/"
        cookie = next(c for c in chromium.get_cookies() if c["name"] == COOKIE)
        assert cookie["httpOnly"] and cookie["sameSite"] == "Strict" and not cookie["secure"]
        assert cookie["value"] != token and token not in json.dumps(chromium.get_cookies())
        assert chromium.execute_script("return document.cookie") == ""  # HttpOnly: no script reads it
    finally:
        chromium.delete_all_cookies()
        server.stop()
