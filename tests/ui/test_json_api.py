"""The relay's JSON HTTP API over a real store (chdb and clickhouse-server): filtered queries answer
what users ask for, Node Graph fields are there, bad parameters get 400 naming the parameter."""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request

import pytest

from lab.testbed import sample_flows as sf
from lab.testbed.clickhouse import free_port
from storage import DeferredStore
from ui.json_api import create_http_api
from tests.grafana.dashboards import API_QUERIES
from tests.grafana.stores import NS, ROUNDS, shop_store


@pytest.fixture(scope="module", params=["chdb", "server"])
def api(request, chdb_dir, tmp_path_factory):
    for store, now in shop_store(request, chdb_dir, tmp_path_factory.mktemp("spool")):
        server = create_http_api(store)
        yield server.url, now
        server.stop()


def get(base: str, path: str):
    try:
        with urllib.request.urlopen(base + path, timeout=30) as resp:
            assert resp.headers["Content-Type"] == "application/json"
            return resp.status, json.load(resp)
    except urllib.error.HTTPError as err:
        return err.code, json.load(err)


def test_flows_filtered_by_namespace_verdict_protocol_pod_and_label(api):
    base, _ = api
    status, rows = get(base, "/api/v1/flows?namespace=kube-system&limit=1000")
    assert status == 200
    assert len(rows) == 4 * ROUNDS  # two DNS exchanges of two records per round
    assert all("kube-system" in (r["source_namespace"], r["destination_namespace"]) for r in rows)
    _, rows = get(base, "/api/v1/flows?verdict=DROPPED&limit=1000")
    assert len(rows) == 2 * ROUNDS and {r["verdict"] for r in rows} == {"DROPPED"}
    assert {r["drop_reason"] for r in rows} == {"POLICY_DENIED", ""}
    _, rows = get(base, "/api/v1/flows?protocol=http&limit=2")
    assert len(rows) == 2 and {r["l7"] for r in rows} == {"http"}
    _, rows = get(base, "/api/v1/flows?pod=shop/db-0&verdict=forwarded&limit=1000")
    assert len(rows) == 2 * ROUNDS  # SYN and RST from backend; the frontend's attempts were dropped
    assert all(r["destination_pod"] == "db-0" and r["source_workload"] == "backend" for r in rows)
    _, rows = get(base, "/api/v1/flows?label=k8s:app=coredns&protocol=dns&limit=1000")
    assert len(rows) == 4 * ROUNDS and all(r["l7"] == "dns" for r in rows)


def test_flows_time_window_limit_and_hubble_format(api):
    base, now = api
    since = (now - 90 * NS) // 1_000_000  # Grafana's ${__from}: milliseconds
    _, recent = get(base, f"/api/v1/flows?since={since}&limit=10000")
    _, everything = get(base, "/api/v1/flows?since=1h&limit=10000")
    assert len(everything) == ROUNDS * len(sf.shop_round())
    assert len(recent) == len(sf.shop_round())  # only the last round is younger than 90 s
    _, first = get(base, "/api/v1/flows?first=true&limit=3&since=1h")
    assert [r["time"] for r in first] == sorted(r["time"] for r in everything)[:3]
    _, hubble = get(base, "/api/v1/flows?format=hubble&verdict=DROPPED&limit=1")
    assert hubble[0]["flow"]["verdict"] == "DROPPED" and hubble[0]["flow"]["source"]["pod_name"]
    assert hubble[0]["node_name"] == "node-a" and hubble[0]["time"].endswith("Z")


def test_servicemap_has_node_graph_fields(api):
    base, _ = api
    status, body = get(base, "/api/v1/servicemap?since=1h")
    assert status == 200
    ids = {n["id"] for n in body["nodes"]}
    for node in body["nodes"]:
        assert {"id", "title", "subtitle", "mainstat", "secondarystat"} <= set(node)
    for edge in body["edges"]:
        assert {"id", "source", "target", "mainstat", "secondarystat"} <= set(edge)
        assert edge["source"] in ids and edge["target"] in ids
    pairs = {(e["source"], e["target"], e["detail__verdict"]) for e in body["edges"]}
    assert ("shop/frontend", "shop/backend", "FORWARDED") in pairs
    assert ("shop/frontend", "shop/db", "DROPPED") in pairs
    _, only_dns = get(base, "/api/v1/servicemap?since=1h&namespace=kube-system")
    assert {e["target"] for e in only_dns["edges"]} == {"kube-system/coredns"}


def test_red_dns_drops_talkers_namespaces_nodes(api):
    base, _ = api
    _, red = get(base, "/api/v1/red?since=1h&step=3600&workload=backend")
    assert sum(p["requests"] for p in red) == 4 * ROUNDS  # three HTTP/1.1 requests and a gRPC call
    assert sum(p["errors"] for p in red) == ROUNDS
    assert all(p["p95_ms"] > 0 for p in red)
    _, dns = get(base, "/api/v1/dns?since=1h")
    top = {q["query"]: q for q in dns["top_queries"]}
    assert top["nosuch.example."]["nxdomain"] == ROUNDS
    _, drops = get(base, "/api/v1/drops?since=1h")
    assert {d["reason"]: d["flows"] for d in drops}["POLICY_DENIED"] == ROUNDS
    _, talkers = get(base, "/api/v1/talkers?since=1h&by=flows&limit=1")
    assert len(talkers) == 1 and talkers[0]["flows"] > 0
    _, namespaces = get(base, "/api/v1/namespaces?since=1h")
    assert namespaces == [{"namespace": "kube-system"}, {"namespace": "shop"}]
    _, nodes = get(base, "/api/v1/nodes?since=1h")
    assert [n["name"] for n in nodes] == ["node-a"]


@pytest.mark.parametrize("path, parameter", [
    ("/api/v1/flows?verdict=MAYBE", "verdict"),
    ("/api/v1/flows?protocol=smtp", "protocol"),
    ("/api/v1/flows?limit=0", "limit"),
    ("/api/v1/flows?limit=ten", "limit"),
    ("/api/v1/flows?limit=%C2%B3", "limit"),  # "³".isdigit() is True (found by tests/fuzz/fuzz_json_api.py)
    ("/api/v1/red?step=%D9%A6%D9%A0", "step"),  # Arabic-Indic digits
    ("/api/v1/flows?since=yesterday", "since"),
    ("/api/v1/flows?label=app%3D%3D%3D(", "label"),
    ("/api/v1/flows?namespace=a&namespace=b&pod=x", "namespace"),
    ("/api/v1/flows?colour=blue", "colour"),
    ("/api/v1/flows?format=xml", "format"),
    ("/api/v1/red?step=61", "step"),
    ("/api/v1/servicemap?since=2h&until=3h", "since"),
    ("/api/v1/talkers?by=packets", "by"),
])
def test_bad_parameters_get_400_naming_the_parameter(api, path, parameter):
    base, _ = api
    status, body = get(base, path)
    assert status == 400
    assert f"parameter {parameter!r}" in body["error"]


def test_index_and_status(api):
    base, _ = api
    _, index = get(base, "/api/v1")
    assert {e["path"] for e in index} >= {"/api/v1/flows", "/api/v1/servicemap", "/api/v1/red", "/api/v1/dns"}
    _, status = get(base, "/api/v1/status")
    assert status["flows"] == ROUNDS * len(sf.shop_round()) and status["schema_version"] >= 1


def test_unknown_path_is_404(api):
    base, _ = api
    status, body = get(base, "/api/v1/nope")
    assert status == 404 and "/api/v1/flows" in body["error"]


@pytest.mark.parametrize("query", API_QUERIES, ids=[f"{q.dashboard}:{q.panel}:{q.ref_id}" for q in API_QUERIES])
def test_every_infinity_panel_gets_its_columns(api, query):
    """The Infinity targets of the embedded-store dashboard, with Grafana's ${__from}/${__to} (ms) expanded."""
    base, now = api
    window = {"${__from}": str((now - 3600 * NS) // 1_000_000), "${__to}": str(now // 1_000_000)}
    params = urllib.parse.urlencode([(k, window.get(v, v)) for k, v in query.params])
    status, body = get(base, f"{query.url}?{params}")
    assert status == 200, body
    rows = body[query.root] if query.root else body
    assert rows, f"{query.panel}: no rows"
    for row in rows:
        assert set(query.columns) <= set(row), f"{query.panel}: missing {set(query.columns) - set(row)}"


def test_flow_row_survives_enum_values_it_does_not_know():
    from ui.json_api import flow_row

    flow = sf.policy_drop(sf.FRONTEND, sf.DB, 5432)
    flow.drop_reason_desc = 250  # a reason newer than our protos
    row = flow_row(flow)
    assert row["drop_reason"] == "250" and row["verdict"] == "DROPPED"
    assert row["source_pod"] == "frontend-7d9f-abcde" and row["destination_port"] == 5432


def test_a_store_that_does_not_answer_gets_503_naming_it(tmp_path):
    """A ClickHouse that is down is not the caller's fault: 503 with Retry-After, not 400, so Grafana and
    proxies retry; the message names the store."""
    port = free_port()
    server = create_http_api(DeferredStore(f"clickhouse://127.0.0.1:{port}/flowscope", retry_s=0.1))
    try:
        try:
            urllib.request.urlopen(server.url + "/api/v1/flows?since=5m", timeout=30)
            raise AssertionError("a store that is down answered 200")
        except urllib.error.HTTPError as err:
            assert err.code == 503 and err.headers["Retry-After"] == "5"
            assert f"127.0.0.1:{port}" in json.load(err)["error"]
    finally:
        server.stop()
