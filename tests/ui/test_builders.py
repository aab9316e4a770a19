"""Builders: query results -> cytoscape elements, plotly figures, table rows, policy views. No browser."""

from __future__ import annotations

import json

import pytest

from proto.flow import flow_pb2
from storage.results import DnsQuery, DnsSummary, DropCount, MapEdge, MapNode, RedPoint, ServiceMap
from ui.builders import figures, flows, policy, service_map as sm

MS = 1_000_000


def edge(source, target, port=8080, protocol="TCP", verdict="FORWARDED", flows_=10, requests=0, errors=0,
         l7=()):
    return MapEdge(source, target, port, protocol, verdict, flows_, flows_ * 100, requests, errors,
                   errors / requests if requests else 0.0, None, None, None, l7)


def node(nid, kind="pod"):
    if kind == "pod":
        ns, _, wl = nid.partition("/")
        return MapNode(nid, ns, wl, "pod")
    return MapNode(nid, "", nid.partition(":")[2], kind)


DEMO = ServiceMap(0, 60_000_000_000, [
    node("shop/frontend"), node("shop/backend"), node("data/database"), node("kube-system/coredns"),
    node("world:api.example.com", "world"), node("host:host", "host")],
    [edge("shop/frontend", "shop/backend", requests=100, errors=25, l7=("http",)),
     edge("shop/backend", "data/database", 6379),
     edge("shop/frontend", "data/database", 6379, verdict="DROPPED", flows_=3),
     edge("shop/frontend", "kube-system/coredns", 53, "UDP", requests=50, l7=("dns",)),
     edge("shop/frontend", "world:api.example.com", 80, l7=("http",)),
     edge("host:host", "shop/backend", 8080, verdict="AUDIT")])


def by_id(view):
    return {e["data"]["id"]: e for e in view.elements}


def test_nodes_grouped_by_namespace_with_distinct_kinds():
    els = by_id(sm.build_elements(DEMO))
    assert els["shop/frontend"]["data"]["parent"] == "ns:shop"
    assert els["data/database"]["data"]["parent"] == "ns:data"
    assert {"ns:shop", "ns:data", "ns:kube-system"} <= set(els)
    assert els["kube-system/coredns"]["classes"] == "dns"  # serves DNS on port 53
    assert els["world:api.example.com"]["classes"] == "world"
    assert els["world:api.example.com"]["data"]["label"] == "api.example.com"  # named by DNS
    assert els["host:host"]["classes"] == "host" and "parent" not in els["host:host"]["data"]


def test_edges_per_connection_class_coloured_by_verdict_and_error_rate():
    els = by_id(sm.build_elements(DEMO))
    http = els["edge:shop/frontend|shop/backend|8080|TCP|FORWARDED"]["data"]
    assert http["label"] == "TCP/8080 http" and http["error_rate"] == 0.25
    assert http["color"] == sm.edge_color("FORWARDED", 0.25) != sm.COLORS["FORWARDED"]
    assert els["edge:shop/backend|data/database|6379|TCP|FORWARDED"]["data"]["color"] == sm.COLORS["FORWARDED"]
    dropped = els["edge:shop/frontend|data/database|6379|TCP|DROPPED"]
    assert dropped["data"]["color"] == sm.COLORS["DROPPED"] and "dropped" in dropped["classes"]
    assert "audit" in els["edge:host:host|shop/backend|8080|TCP|AUDIT"]["classes"]
    assert sum(1 for e in els.values() if "source" in e["data"]) == len(DEMO.edges)


def test_width_grows_with_volume_and_is_bounded():
    assert sm.edge_width(1) == 1.0 < sm.edge_width(100) < sm.edge_width(10_000) <= sm.edge_width(10**12) == 12.0


def test_layout_is_deterministic_and_independent_of_input_order():
    a = sm.build_elements(DEMO)
    shuffled = ServiceMap(0, 1, list(reversed(DEMO.nodes)), list(reversed(DEMO.edges)))
    b = sm.build_elements(shuffled)
    pos = lambda v: {e["data"]["id"]: e.get("position") for e in v.elements}  # noqa: E731
    assert pos(a) == pos(b)
    positions = [p for p in pos(a).values() if p]
    assert len({(p["x"], p["y"]) for p in positions}) == len(positions)  # nothing on top of each other


def test_what_changed_marks_added_and_removed_edges():
    gone = edge("shop/backend", "data/legacy-db", 5432)
    view = sm.build_elements(DEMO, added=[DEMO.edges[0]], removed=[gone])
    els = by_id(view)
    assert "added" in els["edge:shop/frontend|shop/backend|8080|TCP|FORWARDED"]["classes"]
    removed = els["edge:shop/backend|data/legacy-db|5432|TCP|FORWARDED"]
    assert "removed" in removed["classes"] and removed["data"]["color"] == sm.REMOVED_COLOR
    assert "data/legacy-db" in els  # the node only the previous window had is drawn too
    assert "added" not in els["edge:shop/backend|data/database|6379|TCP|FORWARDED"]["classes"]


def big_map(workloads=500, namespaces=25, edges_=5000):
    nodes = [node(f"ns-{i % namespaces:02d}/wl-{i:03d}") for i in range(workloads)]
    es = [edge(nodes[i % workloads].id, nodes[(i * 7 + 3) % workloads].id, 8000 + i // workloads)
          for i in range(edges_)]
    return ServiceMap(0, 1, nodes, es)


def test_large_maps_collapse_to_namespaces_and_expand_on_demand():
    smap = big_map()
    view = sm.build_elements(smap)
    assert view.workloads == 500 and view.edges == 5000 and len(view.collapsed) == 25
    els = by_id(view)
    assert not any(e["data"].get("kind") == "pod" for e in els.values())
    agg = [e for e in els.values() if "source" in e["data"]]
    assert len(agg) <= 25 * 25 and sum(e["data"]["flows"] for e in agg) == 5000 * 10
    assert agg[0]["data"]["selection"].startswith("namespaces:ns:")
    expanded = by_id(sm.build_elements(smap, expanded=["ns-03"]))
    pods = [e for e in expanded.values() if e["data"].get("kind") == "pod"]
    assert len(pods) == 20 and all(p["data"]["parent"] == "ns:ns-03" for p in pods)
    assert "ns:ns-03" in expanded and "collapsed" not in expanded["ns:ns-03"]["classes"]
    plain = [e for e in expanded.values() if e["data"]["id"].startswith("edge:")]
    assert plain == []  # pod-to-pod edges need both ends expanded; the rest stay aggregated
    assert sum(e["data"]["flows"] for e in expanded.values() if "source" in e["data"]) == 5000 * 10


def test_small_maps_are_not_collapsed():
    assert sm.build_elements(big_map(40, 4, 200)).collapsed == ()


def red_point(minute, wl, requests, errors, p50):
    return RedPoint(minute * 60 * 10**9, "shop", wl, requests, requests / 60, errors, 0,
                    errors / requests, p50 * MS, 2 * p50 * MS, 3 * p50 * MS)


def test_red_figure_has_rate_errors_and_latency_per_workload():
    fig = figures.red_figure([red_point(0, "backend", 120, 30, 4), red_point(1, "backend", 60, 0, 5)])
    names = [t.name for t in fig.data]
    assert names == ["shop/backend req/s", "shop/backend error %", "shop/backend p50", "shop/backend p95",
                     "shop/backend p99"]
    assert list(fig.data[0].y) == [2.0, 1.0] and list(fig.data[1].y) == [25.0, 0.0]
    assert list(fig.data[2].y) == [4.0, 5.0] and list(fig.data[4].y) == [12.0, 15.0]


def test_dns_and_drop_figures():
    dns = figures.dns_figure(DnsSummary([], [DnsQuery("backend.shop.svc.cluster.local.", 100, 0, 0),
                                             DnsQuery("nope.shop.svc.cluster.local.", 10, 10, 10)]))
    answered, nx = dns.data
    assert list(answered.y) == ["nope.shop.svc.cluster.local.", "backend.shop.svc.cluster.local."]
    assert list(answered.x) == [0, 100] and list(nx.x) == [10, 0]
    drops = figures.drops_figure([DropCount("POLICY_DENIED", 133, "", 20),
                                  DropCount("UNKNOWN_REASON", 0, "NETFILTER_DROP", 3)])
    assert list(drops.data[0].y) == ["UNKNOWN_REASON (NETFILTER_DROP)", "POLICY_DENIED"]
    assert list(drops.data[0].x) == [3, 20]


@pytest.mark.parametrize("build, arg, text", [
    (figures.red_figure, [], "no HTTP responses"), (figures.dns_figure, DnsSummary([], []), "no DNS"),
    (figures.drops_figure, [], "no drops")])
def test_empty_figures_say_so(build, arg, text):
    assert text in build(arg).layout.annotations[0].text


def sample_flow():
    f = flow_pb2.Flow(uuid="u-1", node_name="lab-node", verdict=flow_pb2.FORWARDED,
                      traffic_direction=flow_pb2.EGRESS)
    f.source.namespace, f.source.pod_name = "shop", "frontend-1"
    f.source.labels.extend(["k8s:app=frontend", "k8s:tier=web"])
    f.l4.TCP.destination_port = 8080
    f.l7.http.code = 200
    return f


def test_flow_details_list_every_set_field_and_json_uses_proto_names():
    fields = dict(flows.flow_fields(sample_flow()))
    assert fields["source.pod_name"] == "frontend-1" and fields["source.labels[1]"] == "k8s:tier=web"
    assert fields["l4.TCP.destination_port"] == "8080" and fields["traffic_direction"] == "EGRESS"
    doc = json.loads(flows.flow_json(sample_flow()))
    assert doc["node_name"] == "lab-node" and doc["l7"]["http"]["code"] == 200 and "nodeName" not in doc


def test_grid_rows_and_sorting():
    rows = flows.grid_rows([{"time_ns": 1_700_000_000_123_456_789, "uuid": "a"}])
    assert rows[0]["time"] == "2023-11-14 22:13:20.123"
    allowed = ("time_ns", "dst_port")
    assert flows.sort_from_model([], allowed) == ("time_ns", True)
    assert flows.sort_from_model([{"colId": "time", "sort": "asc"}], allowed) == ("time_ns", False)
    assert flows.sort_from_model([{"colId": "dst_port", "sort": "desc"}], allowed) == ("dst_port", True)
    assert flows.sort_from_model([{"colId": "nope", "sort": "asc"}], allowed) == ("time_ns", True)
    assert {c["field"] for c in flows.column_defs()} >= {"time", "verdict", "src_pod", "dst_pod", "http_code"}


def test_policy_evidence_and_diff():
    doc = {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
           "metadata": {"name": "backend-least-privilege", "namespace": "shop",
                        "annotations": {"flowscope.io/evidence.ingress.0": "shop/frontend: 10 flows",
                                        "flowscope.io/evidence.egress.0": "data/database: 4 flows"}},
           "spec": {"podSelector": {"matchLabels": {"app": "backend"}}, "ingress": [{"ports": [{"port": 8080}]}]}}
    assert policy.evidence_rows(doc) == [{"rule": "egress[0]", "evidence": "data/database: 4 flows"},
                                         {"rule": "ingress[0]", "evidence": "shop/frontend: 10 flows"}]
    assert "+kind: NetworkPolicy" in policy.diff_text(doc, None)
    applied = {**doc, "metadata": {"name": "backend-least-privilege", "namespace": "shop"}}
    assert policy.diff_text(doc, applied) == ""  # evidence is not policy
    older = {**applied, "spec": {"podSelector": {"matchLabels": {"app": "backend"}},
                                 "ingress": [{"ports": [{"port": 80}]}]}}
    diff = policy.diff_text(doc, older)
    assert "-    - port: 80\n" in diff and "+    - port: 8080\n" in diff


def edge_ids(smap):
    return {e.key for e in smap.edges}


def test_map_filters_by_verdict_protocol_and_pod():
    dropped = sm.filter_map(DEMO, sm.edge_matcher(verdicts=["DROPPED"]))
    assert edge_ids(dropped) == {("shop/frontend", "data/database", 6379, "TCP", "DROPPED")}
    assert {n.id for n in dropped.nodes} == {"shop/frontend", "data/database"}
    dns = sm.filter_map(DEMO, sm.edge_matcher(protocols=["dns"]))
    assert edge_ids(dns) == {("shop/frontend", "kube-system/coredns", 53, "UDP", "FORWARDED")}
    assert len(sm.filter_map(DEMO, sm.edge_matcher(protocols=["udp", "http"])).edges) == 3
    backend = sm.filter_map(DEMO, sm.edge_matcher(pod="shop/back"))
    assert all("shop/backend" in (e.source, e.target) for e in backend.edges) and len(backend.edges) == 3
    assert sm.filter_map(DEMO, sm.edge_matcher()) == DEMO
    anywhere = sm.filter_map(DEMO, sm.edge_matcher(pod="/data"))  # any namespace: "database"
    assert {e.target for e in anywhere.edges} == {"data/database"}
    assert sm.filter_map(DEMO, sm.edge_matcher(pod="/nothing")).nodes == []


def test_world_to_world_traffic_is_not_drawn_but_a_pod_calling_itself_is():
    """ICMPv6 neighbour discovery between outside addresses gave the world node an edge to itself."""
    smap = ServiceMap(0, 60_000_000_000, [node("shop/frontend"), node("world:world", "world"),
                                          node("world:api.example.com", "world")],
                      [edge("world:world", "world:world", 0, "ICMPv6"), edge("shop/frontend", "shop/frontend", 8080),
                       edge("shop/frontend", "world:api.example.com", 443)])
    view = sm.build_elements(smap)
    els = by_id(view)
    assert "edge:world:world|world:world|0|ICMPv6|FORWARDED" not in els and "world:world" not in els, \
        "neither the loop nor the node only it brought"
    assert {"edge:shop/frontend|shop/frontend|8080|TCP|FORWARDED", "world:api.example.com",
            "edge:shop/frontend|world:api.example.com|443|TCP|FORWARDED"} <= set(els)
    assert view.edges == 2, "the summary counts the edges drawn"
