"""ui.data over a real embedded store: the flows behind a clicked node, edge or aggregated edge."""

from __future__ import annotations

import time
import uuid

import pytest

from lab.testbed.flowgen import demo_flows, synthetic_flows
from ui.builders.service_map import build_elements
from ui.data import UIData
from ui.state import ViewState, flow_filters, parse_selection

NS = 1_000_000_000


@pytest.fixture(scope="module")
def data(chdb_dir):
    from storage import FlowWriter, open_store
    store = open_store(f"chdb://{chdb_dir}?database=uidata_{uuid.uuid4().hex[:10]}")
    store.migrate()
    now = time.time_ns()
    writer = FlowWriter(store)
    writer.write(demo_flows(now - 120 * NS, 20))
    for batch in synthetic_flows(now - 100 * NS, 3000, workloads=120, namespaces=6, edges=400, span_s=60):
        writer.write(batch)
    writer.close()
    yield UIData(store, ttl_s=0.0), now - 180 * NS, now
    store.drop_database()


def page(data, since, until, selection, filters=()):
    return data.flows_page(list(filters), since, until, 0, 500, "time_ns", True, selection)


def test_node_selection_matches_the_nodes_flow_counts(data):
    d, since, until = data
    smap = d.service_map(since, until, None)
    world = next(n for n in smap.nodes if n.id == "world:api.example.com")
    assert page(d, since, until, {"kind": "node", "id": world.id}).total == world.flows_in == 20 * 4
    frontend = next(n for n in smap.nodes if n.id == "shop/frontend")
    assert page(d, since, until, {"kind": "node", "id": "shop/frontend"}).total == frontend.flows_out


def test_aggregated_edge_of_a_collapsed_map_selects_flows_between_its_ends(data):
    d, since, until = data
    smap = d.service_map(since, until, None)
    view = build_elements(smap, collapse_above=10)
    agg = next(e["data"] for e in view.elements
               if e["data"].get("selection", "").startswith("namespaces:ns:ns-01|ns:ns-02"))
    result = page(d, since, until, parse_selection(agg["selection"]))
    assert result.total >= agg["flows"] > 0
    assert all({r["src_namespace"], r["dst_namespace"]} == {"ns-01", "ns-02"} for r in result.rows)
    world = next(e["data"] for e in view.elements if e["data"].get("target") == "world:api.example.com")
    rows = page(d, since, until, parse_selection(world["selection"])).rows
    assert rows and all("198.51.100.10" in (r["src_ip"], r["dst_ip"]) for r in rows)


def test_filters_apply_to_the_selected_edge(data):
    d, since, until = data
    edge = parse_selection("edge:shop/frontend|shop/backend|8080|TCP|FORWARDED")
    everything = page(d, since, until, edge).total
    errors = page(d, since, until, edge, flow_filters(ViewState(http_status="500"))).total
    assert everything == 20 * 4 * 4 and errors == 20  # one /api/error response per round
