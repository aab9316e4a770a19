"""ServiceMap -> dash-cytoscape elements with a deterministic (preset) layout.

Workloads are grouped in compound namespace nodes; world, host, DNS and other reserved kinds are their
own node kinds. One edge per connection class (client, server, port, protocol, verdict), coloured by
verdict and HTTP error rate, with width by volume. Positions depend only on the node ids present, so a
refresh that brings the same nodes draws the same picture. Above `collapse_above` workloads, every
namespace not in `expanded` collapses into one node with the edges between namespaces aggregated.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Iterable

from common.protocols import L4_PROTOCOLS
from storage.results import MapEdge, MapNode, ServiceMap

CELL_X, CELL_Y = 170, 110  # workload spacing inside a namespace box
BLOCK_GAP = 120  # between namespace boxes
COLLAPSE_ABOVE = 60  # workloads; above this the map starts collapsed
DNS_PORT = 53

COLORS = {"FORWARDED": "#2e7d32", "DROPPED": "#c62828", "AUDIT": "#ef6c00", "ERROR": "#6a1b9a"}
ERROR_COLORS = ((0.10, "#d84315"), (0.01, "#f9a825"))  # forwarded edges by HTTP error rate
REMOVED_COLOR = "#9e9e9e"


@dataclasses.dataclass(frozen=True)
class MapView:
    elements: list[dict]
    workloads: int  # pod nodes in the map (before collapsing)
    edges: int  # edge classes in the map (before aggregating)
    collapsed: tuple[str, ...]  # namespaces drawn as one node


def namespace_node_id(namespace: str) -> str:
    return f"ns:{namespace}"


def edge_selection(edge: MapEdge) -> str:
    """The selection string (ui.state.parse_selection) of an edge."""
    return f"edge:{edge.source}|{edge.target}|{edge.port}|{edge.protocol}|{edge.verdict}"


def edge_color(verdict: str, error_rate: float) -> str:
    if verdict == "FORWARDED":
        for threshold, color in ERROR_COLORS:
            if error_rate >= threshold:
                return color
    return COLORS.get(verdict, "#616161")


def edge_width(flows: int) -> float:
    """1 px for one flow, growing with the logarithm of the volume, at most 12 px."""
    return round(min(12.0, 1.0 + 2.0 * math.log10(max(flows, 1))), 2)


def edge_matcher(verdicts=(), protocols=(), pod: str = ""):
    """The map's share of the view's filters, on what an edge knows: verdict, L4 protocol or L7 seen,
    and a "namespace/prefix" pod filter matched against workload names (pods are named after them).
    Label and HTTP-status filters need individual flows: they narrow the table and panels only."""
    verdicts = set(verdicts)
    l4 = {name for p in protocols for name in L4_PROTOCOLS.get(p, ())}
    l7 = {p for p in protocols if p not in L4_PROTOCOLS}
    ns, _, prefix = pod.partition("/") if "/" in pod else ("", "", pod)

    def side(nid: str) -> bool:
        namespace, sep, workload = nid.partition("/")
        return bool(sep) and (not ns or namespace == ns) and workload.startswith(prefix)

    def match(edge: MapEdge) -> bool:
        return ((not verdicts or edge.verdict in verdicts)
                and (not protocols or edge.protocol in l4 or bool(l7 & set(edge.l7)))
                and (not pod or side(edge.source) or side(edge.target)))
    return match


def filter_map(smap: ServiceMap, match) -> ServiceMap:
    """The edges `match` keeps, and only the nodes they touch."""
    edges = [e for e in smap.edges if match(e)]
    touched = {e.source for e in edges} | {e.target for e in edges}
    return ServiceMap(smap.since_ns, smap.until_ns, [n for n in smap.nodes if n.id in touched], edges)


def _dns_servers(edges: Iterable[MapEdge]) -> set[str]:
    return {e.target for e in edges if e.port == DNS_PORT and ("dns" in e.l7 or e.protocol == "UDP")}


def _kind_class(node: MapNode, dns: set[str]) -> str:
    if node.id in dns:
        return "dns"
    return node.kind if node.kind in ("pod", "world", "host") else "reserved"


def _grid(count: int) -> tuple[int, int]:
    cols = max(1, math.ceil(math.sqrt(count)))
    return cols, max(1, math.ceil(count / cols))


def layout_positions(nodes: list[MapNode], collapsed: set[str]) -> dict[str, dict]:
    """Preset positions: namespace boxes (sorted) on a square-ish grid of rows, workloads (sorted) on a
    grid inside each box, a collapsed namespace as one point, other kinds in a column to the right."""
    by_ns: dict[str, list[str]] = {}
    others = []
    for n in nodes:
        if n.kind == "pod":
            by_ns.setdefault(n.namespace, []).append(n.id)
        else:
            others.append(n)
    per_row = max(1, math.ceil(math.sqrt(len(by_ns))))
    positions: dict[str, dict] = {}
    x = y = row_height = max_x = 0
    for i, ns in enumerate(sorted(by_ns)):
        ids = sorted(by_ns[ns])
        cols, rows = _grid(1 if ns in collapsed else len(ids))
        width, height = cols * CELL_X, rows * CELL_Y
        if i and i % per_row == 0:
            x, y, row_height = 0, y + row_height + BLOCK_GAP, 0
        if ns in collapsed:
            positions[namespace_node_id(ns)] = {"x": x + CELL_X / 2, "y": y + CELL_Y / 2}
        else:
            for j, nid in enumerate(ids):
                positions[nid] = {"x": x + (j % cols) * CELL_X + CELL_X / 2,
                                  "y": y + (j // cols) * CELL_Y + CELL_Y / 2}
        x += width + BLOCK_GAP
        max_x = max(max_x, x)
        row_height = max(row_height, height)
    column_x = max_x + CELL_X / 2
    for i, n in enumerate(sorted(others, key=lambda n: (n.kind, n.id))):
        positions[n.id] = {"x": column_x, "y": i * CELL_Y + CELL_Y / 2}
    return positions


def _node_element(node: MapNode, kind_class: str, position: dict, parent: str | None) -> dict:
    data = {"id": node.id, "label": node.workload, "kind": node.kind, "namespace": node.namespace,
            "flows_in": node.flows_in, "flows_out": node.flows_out}
    if parent:
        data["parent"] = parent
    return {"data": data, "position": position, "classes": kind_class}


def _edge_element(edge: MapEdge, change: str) -> dict:
    label = f"{edge.protocol}/{edge.port}" if edge.protocol else str(edge.port)
    if edge.l7:
        label += " " + ",".join(edge.l7)
    color = REMOVED_COLOR if change == "removed" else edge_color(edge.verdict, edge.error_rate)
    classes = [edge.verdict.lower()] + ([change] if change else [])
    if edge.error_rate > 0:
        classes.append("errors")
    return {"data": {"id": edge_selection(edge), "source": edge.source, "target": edge.target,
                     "label": label, "verdict": edge.verdict, "port": edge.port,
                     "protocol": edge.protocol, "flows": edge.flows, "bytes": edge.bytes,
                     "requests": edge.requests, "error_rate": round(edge.error_rate, 4),
                     "color": color, "width": edge_width(edge.flows), "change": change,
                     "selection": edge_selection(edge)},
            "classes": " ".join(classes)}


def _aggregate(edges: list[tuple[MapEdge, str]], endpoint) -> list[dict]:
    """Edges touching a collapsed namespace, merged per (source, target, verdict) of the drawn nodes."""
    groups: dict[tuple[str, str, str], dict] = {}
    for edge, change in edges:
        key = (endpoint(edge.source), endpoint(edge.target), edge.verdict)
        g = groups.setdefault(key, {"flows": 0, "bytes": 0, "requests": 0, "errors": 0, "classes": 0,
                                    "changes": set()})
        g["flows"] += edge.flows
        g["bytes"] += edge.bytes
        g["requests"] += edge.requests
        g["errors"] += edge.errors
        g["classes"] += 1
        g["changes"].add(change)
    out = []
    for (source, target, verdict), g in sorted(groups.items()):
        error_rate = g["errors"] / g["requests"] if g["requests"] else 0.0
        change = next(iter(g["changes"])) if len(g["changes"]) == 1 else ""
        color = REMOVED_COLOR if change == "removed" else edge_color(verdict, error_rate)
        out.append({"data": {"id": f"agg:{source}|{target}|{verdict}", "source": source, "target": target,
                             "label": f"{g['classes']} classes", "verdict": verdict,
                             "flows": g["flows"], "bytes": g["bytes"], "requests": g["requests"],
                             "error_rate": round(error_rate, 4), "color": color,
                             "width": edge_width(g["flows"]), "change": change,
                             "selection": f"namespaces:{source}|{target}"},
                    "classes": " ".join([verdict.lower(), "aggregate"] + ([change] if change else []))})
    return out


def build_elements(smap: ServiceMap, added: Iterable[MapEdge] = (), removed: Iterable[MapEdge] = (),
                   expanded: Iterable[str] = (), collapse_above: int = COLLAPSE_ABOVE) -> MapView:
    """Cytoscape elements for `smap`. `added`/`removed` (from ServiceMapChanges) mark edges new in this
    window or gone since the previous one; removed edges are drawn grey with their nodes."""
    smap = _without_outside_loops(smap)
    added_keys = {e.key for e in added}
    removed = [e for e in removed]
    nodes = {n.id: n for n in smap.nodes}
    for e in removed:  # nodes only the previous window had
        for nid in (e.source, e.target):
            if nid not in nodes:
                nodes[nid] = _node_from_id(nid)
    node_list = sorted(nodes.values(), key=lambda n: n.id)
    pods = [n for n in node_list if n.kind == "pod"]
    expanded = set(expanded)
    namespaces = sorted({n.namespace for n in pods})
    collapsed = set() if len(pods) <= collapse_above else {ns for ns in namespaces if ns not in expanded}
    positions = layout_positions(node_list, collapsed)
    all_edges = [e for e in smap.edges] + removed
    dns = _dns_servers(all_edges)

    def endpoint(nid: str) -> str:
        n = nodes[nid]
        return namespace_node_id(n.namespace) if n.kind == "pod" and n.namespace in collapsed else nid

    elements: list[dict] = []
    counts: dict[str, int] = {}
    for n in pods:
        counts[n.namespace] = counts.get(n.namespace, 0) + 1
    for ns in namespaces:
        if ns in collapsed:
            elements.append({"data": {"id": namespace_node_id(ns), "label": f"{ns} ({counts[ns]} workloads)",
                                      "kind": "namespace", "namespace": ns, "workloads": counts[ns]},
                             "position": positions[namespace_node_id(ns)],
                             "classes": "namespace collapsed"})
        else:
            # an open namespace box takes no clicks: taps on its workloads would bubble up to it
            elements.append({"data": {"id": namespace_node_id(ns), "label": ns, "kind": "namespace",
                                      "namespace": ns, "workloads": counts[ns]},
                             "classes": "namespace expanded", "selectable": False})
    for n in node_list:
        if n.kind == "pod" and n.namespace in collapsed:
            continue
        parent = namespace_node_id(n.namespace) if n.kind == "pod" else None
        elements.append(_node_element(n, _kind_class(n, dns), positions[n.id], parent))
    plain, merged = [], []
    tagged = [(e, "added" if e.key in added_keys else "") for e in smap.edges]
    tagged += [(e, "removed") for e in removed]
    for edge, change in tagged:
        if endpoint(edge.source) == edge.source and endpoint(edge.target) == edge.target:
            plain.append(_edge_element(edge, change))
        else:
            merged.append((edge, change))
    elements += plain + _aggregate(merged, endpoint)
    return MapView(elements=elements, workloads=len(pods), edges=len(smap.edges),
                   collapsed=tuple(sorted(collapsed)))


def _without_outside_loops(smap: ServiceMap) -> ServiceMap:
    """The map without traffic of a non-pod node with itself (world to world: IPv6 neighbour discovery
    and multicast seen on a pod's device) — no connection of the cluster's workloads — nor the nodes
    only that traffic brought."""
    kinds = {n.id: n.kind for n in smap.nodes}
    edges = [e for e in smap.edges if not (e.source == e.target and kinds.get(e.source, "pod") != "pod")]
    if len(edges) == len(smap.edges):
        return smap
    ends = {nid for e in edges for nid in (e.source, e.target)}
    return dataclasses.replace(smap, edges=edges, nodes=[n for n in smap.nodes if n.kind == "pod" or n.id in ends])


def _node_from_id(nid: str) -> MapNode:
    kind, sep, name = nid.partition(":")
    if "/" in nid and not (sep and "/" not in kind):
        namespace, _, workload = nid.partition("/")
        return MapNode(id=nid, namespace=namespace, workload=workload, kind="pod")
    return MapNode(id=nid, namespace="", workload=name, kind=kind)


# (text, colour, line style) for the legend under the map
LEGEND = (("forwarded", COLORS["FORWARDED"], "solid"), ("HTTP/DNS errors >= 1%", ERROR_COLORS[1][1], "solid"),
          (">= 10%", ERROR_COLORS[0][1], "solid"), ("dropped", COLORS["DROPPED"], "dashed"),
          ("audit", COLORS["AUDIT"], "dotted"), ("gone (what changed)", REMOVED_COLOR, "dashed"))

STYLESHEET = [
    {"selector": "node", "style": {"label": "data(label)", "font-size": 11, "text-valign": "bottom",
                                   "text-margin-y": 4, "width": 34, "height": 34,
                                   "background-color": "#1565c0", "color": "#212121"}},
    {"selector": ".namespace", "style": {"text-valign": "top", "background-color": "#eceff1",
                                         "background-opacity": 0.6, "border-color": "#90a4ae",
                                         "border-width": 1, "font-weight": "bold", "shape": "round-rectangle",
                                         "padding": 18}},
    {"selector": ".expanded", "style": {"events": "no"}},
    {"selector": ".collapsed", "style": {"width": 70, "height": 70, "background-color": "#78909c",
                                         "text-valign": "bottom"}},
    {"selector": ".world", "style": {"shape": "diamond", "background-color": "#6a1b9a"}},
    {"selector": ".host", "style": {"shape": "square", "background-color": "#455a64"}},
    {"selector": ".dns", "style": {"shape": "hexagon", "background-color": "#00838f"}},
    {"selector": ".reserved", "style": {"shape": "triangle", "background-color": "#8d6e63"}},
    # Edges end at the node or its label, whichever they meet first: ended at the node, an arrow
    # coming from below lands on the label under the node and hides the workload's name.
    {"selector": "edge", "style": {"curve-style": "bezier", "target-arrow-shape": "triangle",
                                   "source-endpoint": "outside-to-node-or-label",
                                   "target-endpoint": "outside-to-node-or-label",
                                   "source-distance-from-node": 2, "target-distance-from-node": 4,
                                   "line-color": "data(color)", "target-arrow-color": "data(color)",
                                   "width": "data(width)", "label": "data(label)", "font-size": 9,
                                   "text-rotation": "autorotate", "text-background-color": "#ffffff",
                                   "text-background-opacity": 0.8, "color": "#37474f"}},
    {"selector": ".dropped", "style": {"line-style": "dashed"}},
    {"selector": ".audit", "style": {"line-style": "dotted"}},
    {"selector": ".added", "style": {"underlay-color": "#2962ff", "underlay-opacity": 0.35,
                                     "underlay-padding": 5}},
    {"selector": ".removed", "style": {"line-style": "dashed", "opacity": 0.6}},
    {"selector": ":selected", "style": {"overlay-color": "#ffd600", "overlay-opacity": 0.4,
                                        "overlay-padding": 6}},
]
