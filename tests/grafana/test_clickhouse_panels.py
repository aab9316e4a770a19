"""Every ClickHouse panel's SQL, with Grafana's macros expanded, runs against storage's real schema on
both backends (chdb and Debian's clickhouse-server) and returns the columns the panel expects; the
service map returns what Grafana's Node Graph needs."""

from __future__ import annotations

import time

import pytest

from tests.grafana.dashboards import CLICKHOUSE_QUERIES, expand_clickhouse
from tests.grafana.stores import NS, shop_store


@pytest.fixture(scope="module", params=["chdb", "server"])
def loaded_store(request, chdb_dir, tmp_path_factory):
    """A migrated store per backend holding three minutes of the shop's traffic (shared by the module)."""
    for store, _now in shop_store(request, chdb_dir, tmp_path_factory.mktemp("spool")):
        yield store


def run(store, sql: str) -> tuple[list[str], list[str], list[tuple]]:
    """(column names, column types, rows) of a query."""
    described = store.backend.rows(f"DESCRIBE TABLE ({sql})")
    return [d[0] for d in described], [d[1] for d in described], store.backend.rows(sql)


def expanded(store, sql: str, interval_s: int = 60) -> str:
    now_s = time.time_ns() // NS
    return expand_clickhouse(sql, store.db, now_s - 3600, now_s + 60, interval_s)


@pytest.mark.parametrize("query", CLICKHOUSE_QUERIES,
                         ids=[f"{q.dashboard}:{q.panel}:{q.ref_id}" for q in CLICKHOUSE_QUERIES])
def test_every_clickhouse_panel_runs_and_returns_its_columns(loaded_store, query):
    names, types, rows = run(loaded_store, expanded(loaded_store, query.sql))
    assert tuple(names) == query.columns
    assert rows, f"{query.panel}: no rows"
    if query.format == 0:  # time series: the plugin needs the time column first
        assert names[0] == "time" and types[0].startswith("DateTime"), types


def test_node_graph_fields_and_consistency(loaded_store):
    nodes_q, edges_q = [q for q in CLICKHOUSE_QUERIES if q.panel == "Service map"]
    names, _, rows = run(loaded_store, expanded(loaded_store, nodes_q.sql))
    assert {"id", "title", "mainstat"} <= set(names)
    nodes = {row[0]: dict(zip(names, row)) for row in rows}
    assert {"shop/frontend", "shop/backend", "shop/db", "kube-system/coredns", "world:example.com"} <= set(nodes)
    assert nodes["shop/db"]["secondarystat"] == 6  # per round: the drop and the policy-verdict event
    names, _, rows = run(loaded_store, expanded(loaded_store, edges_q.sql))
    assert {"id", "source", "target", "mainstat"} <= set(names)
    edges = [dict(zip(names, row)) for row in rows]
    assert len({e["id"] for e in edges}) == len(edges), "edge ids must be unique"
    assert all(e["source"] in nodes and e["target"] in nodes for e in edges)
    assert any(e["source"] == "shop/frontend" and e["target"] == "shop/backend" and e["detail__port"] == 8080
               for e in edges)



def test_node_graph_draws_the_map_the_ui_and_json_api_draw(loaded_store):
    """Grafana's panel and FlowStore.service_map read one service-map SQL: same edges, same flows."""
    _, edges_q = [q for q in CLICKHOUSE_QUERIES if q.panel == "Service map"]
    now_s = time.time_ns() // NS
    sql = expand_clickhouse(edges_q.sql, loaded_store.db, now_s - 3600, now_s + 60)
    names, _, rows = run(loaded_store, sql)
    grafana = {}
    for row in rows:
        edge = dict(zip(names, row))
        key = (edge["source"], edge["target"], edge["detail__port"])
        grafana[key] = grafana.get(key, 0) + edge["mainstat"]
    ui = {}
    for e in loaded_store.service_map((now_s - 3600) * NS, (now_s + 60) * NS).edges:
        key = (e.source, e.target, e.port)  # a Grafana edge spans the verdicts of a port and protocol
        ui[key] = ui.get(key, 0) + e.flows
    assert grafana == ui and ui

def test_time_filter_excludes_flows_outside_the_window(loaded_store):
    query = next(q for q in CLICKHOUSE_QUERIES if q.panel == "Top talkers")
    old = time.time_ns() // NS - 7200
    sql = expand_clickhouse(query.sql, loaded_store.db, old - 600, old)
    assert run(loaded_store, sql)[2] == []
