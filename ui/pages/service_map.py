"""The service map page: filters and time window (carried in the URL), the map, the flows behind a
clicked node or edge, one flow's details, and HTTP RED / DNS / drop panels."""

from __future__ import annotations

import functools
import logging
import urllib.parse

import dash
import dash_ag_grid as dag
import dash_cytoscape as cyto
from dash import Input, Output, State, ctx, dcc, html, no_update

from storage.errors import StorageError
from storage.store import TABLE_COLUMNS
from ui import ids
from ui.builders import figures, flows, service_map as map_builder
from ui.data import UIData
from ui.pages import PageOptions
from ui.state import (PROTOCOLS, VERDICTS, ViewError, ViewState, flow_filters, format_selection, from_dict,
                      from_query, parse_selection, to_dict, to_query, window_ns)

log = logging.getLogger(__name__)
NAME = "Service map"
PATH = "/"
WINDOW_OPTIONS = [{"label": "live", "value": "live"}, {"label": "last 5m", "value": "5m"},
                  {"label": "last 1h", "value": "1h"}, {"label": "last 24h", "value": "24h"},
                  {"label": "custom", "value": "custom"}]
PAGE_SIZE = 100
ROW = {"display": "flex", "gap": "12px", "alignItems": "center", "flexWrap": "wrap", "padding": "8px 16px"}
PANEL = {"border": "1px solid #cfd8dc", "borderRadius": "4px", "padding": "8px", "background": "#ffffff"}


def step_for(since: int, until: int) -> int:
    """Plot step: about 60 points per window, in whole minutes."""
    seconds = (until - since) // 1_000_000_000
    return max(60, seconds // 60 // 60 * 60)


def _controls(state: ViewState, error: str) -> html.Div:
    return html.Div([
        dcc.RadioItems(WINDOW_OPTIONS, state.window, id=ids.WINDOW, inline=True,
                       inputStyle={"marginRight": "4px", "marginLeft": "8px"}),
        dcc.Input(id=ids.SINCE, value=state.since, placeholder="from (2h or 2026-01-01T10:00Z)",
                  debounce=True, style={"width": "190px"}),
        dcc.Input(id=ids.UNTIL, value=state.until, placeholder="to (empty = now)", debounce=True,
                  style={"width": "150px"}),
        dcc.Dropdown(id=ids.NAMESPACES, options=[{"label": n, "value": n} for n in state.namespaces],
                     value=list(state.namespaces), multi=True, placeholder="all namespaces",
                     style={"minWidth": "220px"}),
        dcc.Input(id=ids.POD, value=state.pod, placeholder="pod (ns/name-prefix)", debounce=True,
                  style={"width": "170px"}),
        dcc.Input(id=ids.LABEL, value=state.label, placeholder="label (app=frontend)", debounce=True,
                  style={"width": "170px"}),
        dcc.Dropdown(id=ids.VERDICT, options=list(VERDICTS), value=list(state.verdicts), multi=True,
                     placeholder="verdict", style={"minWidth": "160px"}),
        dcc.Dropdown(id=ids.PROTOCOL, options=list(PROTOCOLS), value=list(state.protocols), multi=True,
                     placeholder="protocol", style={"minWidth": "150px"}),
        dcc.Input(id=ids.HTTP_STATUS, value=state.http_status, placeholder="HTTP status (5+, 404)",
                  debounce=True, style={"width": "150px"}),
        dcc.Checklist([{"label": "what changed", "value": "on"}], ["on"] if state.changes else [],
                      id=ids.CHANGES),
        html.Span(error, id=ids.FILTER_ERROR, style={"color": "#c62828"}),
    ], style=ROW)


def _legend() -> html.Div:
    items = [html.Span(text, style={"borderBottom": f"3px {style} {color}", "marginRight": "14px"})
             for text, color, style in map_builder.LEGEND]
    items.append(html.Span("nodes: circle = workload, diamond = world, hexagon = DNS, square = host; width = flows"))
    return html.Div(items, style={"fontSize": "12px", "color": "#455a64", "margin": "4px 0"})


def layout(refresh_s: float = 5.0, **query) -> html.Div:
    """Dash passes the URL's query parameters: the view starts as the link says."""
    error = ""
    try:
        state = from_query(urllib.parse.urlencode(query))
    except ViewError as err:
        state, error = ViewState(), str(err)
    return html.Div([
        dcc.Store(id=ids.STATE, data=to_dict(state)),
        dcc.Store(id=ids.SELECTION, data=parse_selection(state.selection)),
        dcc.Store(id=ids.EXPANDED, data=[]),
        dcc.Store(id=ids.URL_SINK),
        dcc.Store(id=ids.GRID_RESET),
        dcc.Interval(id=ids.TICK, interval=int(refresh_s * 1000), disabled=not state.live),
        _controls(state, error),
        html.Div([
            html.Div([
                html.Div(id=ids.MAP_SUMMARY, style={"fontSize": "13px", "color": "#455a64"}),
                _legend(),
                cyto.Cytoscape(id=ids.MAP, elements=[], layout={"name": "preset", "fit": True, "padding": 30},
                               stylesheet=map_builder.STYLESHEET, minZoom=0.05, maxZoom=1.5,
                               style={"width": "100%", "height": "560px"}),
            ], style={**PANEL, "flex": "3"}),
            html.Div([
                html.Div([html.B("Selection "), html.Button("clear", id=ids.CLEAR_SELECTION, n_clicks=0)]),
                html.Div(id=ids.SELECTION_TEXT, style={"fontSize": "13px", "margin": "6px 0"}),
                html.B("Flow details"),
                html.Div(id=ids.DETAILS, style={"fontSize": "12px", "maxHeight": "260px", "overflow": "auto"}),
                html.Details([html.Summary("JSON"),
                              html.Pre(id=ids.DETAILS_JSON, style={"fontSize": "11px", "maxHeight": "240px",
                                                                   "overflow": "auto"})]),
            ], style={**PANEL, "flex": "1", "minWidth": "300px"}),
        ], style={**ROW, "alignItems": "stretch", "flexWrap": "nowrap"}),
        html.Div([
            html.Div(id=ids.GRID_TOTAL, style={"fontSize": "13px", "margin": "4px 0"}),
            dag.AgGrid(id=ids.GRID, rowModelType="infinite", columnDefs=flows.column_defs(),
                       defaultColDef={"resizable": True, "sortable": True, "minWidth": 80},
                       getRowId="params.data.uuid",
                       dashGridOptions={"cacheBlockSize": PAGE_SIZE, "maxBlocksInCache": 20,
                                        "rowBuffer": 0, "infiniteInitialRowCount": 1},
                       style={"height": "360px"}),
        ], style={**PANEL, "margin": "0 16px"}),
        html.Div([
            html.Div(dcc.Graph(id=ids.RED, config={"displaylogo": False}), style={**PANEL, "flex": "2"}),
            html.Div([dcc.Graph(id=ids.DNS, config={"displaylogo": False}),
                      dcc.Graph(id=ids.DROPS, config={"displaylogo": False})], style={**PANEL, "flex": "1"}),
        ], style={**ROW, "alignItems": "stretch", "flexWrap": "nowrap"}),
    ])


def _store_errors(*fallback):
    """A callback whose store query fails (after ui.data's retries) shows the error where its output
    is (a text given as a function of the error) instead of failing the request; no_update elsewhere."""
    def wrap(callback):
        @functools.wraps(callback)
        def guarded(*args):
            try:
                return callback(*args)
            except StorageError as err:
                log.warning("UI query failed: %s", err)
                out = tuple(f(err) if callable(f) else f for f in fallback)
                return out if len(out) > 1 else out[0]
        return guarded
    return wrap


def _unavailable(err) -> str:
    return f"the flow store did not answer: {err}"


def _window(data: UIData, state: ViewState) -> tuple[int, int]:
    return window_ns(state, data.now_ns())


def register(app: dash.Dash, data: UIData, options: PageOptions) -> None:
    dash.register_page(__name__, path=PATH, name=NAME, layout=functools.partial(layout, refresh_s=options.refresh_s),
                       order=0)

    @app.callback(Output(ids.STATE, "data"), Output(ids.FILTER_ERROR, "children"),
                  Input(ids.WINDOW, "value"), Input(ids.SINCE, "value"), Input(ids.UNTIL, "value"),
                  Input(ids.NAMESPACES, "value"), Input(ids.POD, "value"), Input(ids.LABEL, "value"),
                  Input(ids.VERDICT, "value"), Input(ids.PROTOCOL, "value"), Input(ids.HTTP_STATUS, "value"),
                  Input(ids.CHANGES, "value"), State(ids.STATE, "data"), prevent_initial_call=True)
    def update_state(window, since, until, namespaces, pod, label, verdicts, protocols, status, changes,
                     current):
        state = ViewState(window=window or "live", since=(since or "").strip(), until=(until or "").strip(),
                          namespaces=tuple(namespaces or ()), pod=(pod or "").strip(),
                          label=(label or "").strip(), verdicts=tuple(verdicts or ()),
                          protocols=tuple(protocols or ()), http_status=(status or "").strip(),
                          changes=bool(changes), selection=from_dict(current).selection)
        if state.window == "custom" and not state.since:
            return no_update, "custom window: type a 'from' time (2h, or 2026-01-01T10:00Z)"
        try:
            flow_filters(state)
            window_ns(state, data.now_ns())
        except ViewError as err:
            return no_update, str(err)
        return to_dict(state), ""

    @app.callback(Output(ids.URL_SINK, "data"), Input(ids.STATE, "data"), Input(ids.SELECTION, "data"))
    def url_of_view(state, selection):
        return to_query(from_dict({**(state or {}), "selection": format_selection(selection)}))

    app.clientside_callback(
        """function(search) {
            if (search !== undefined && search !== null && window.location.search !== search) {
                window.history.replaceState(null, "", window.location.pathname + search);
            }
            return window.dash_clientside.no_update;
        }""",
        Output(ids.URL_SINK, "id"), Input(ids.URL_SINK, "data"))

    @app.callback(Output(ids.TICK, "disabled"), Input(ids.STATE, "data"))
    def live_only(state):
        return not from_dict(state).live

    @app.callback(Output(ids.NAMESPACES, "options"), Input(ids.STATE, "data"), Input(ids.TICK, "n_intervals"),
                  State(ids.NAMESPACES, "value"))
    @_store_errors(no_update)
    def namespace_options(state, _tick, chosen):
        since, _ = _window(data, from_dict(state))
        names = sorted(set(data.namespaces(since)) | set(chosen or ()))
        return [{"label": n, "value": n} for n in names]

    @app.callback(Output(ids.MAP, "elements"), Output(ids.MAP_SUMMARY, "children"),
                  Input(ids.STATE, "data"), Input(ids.TICK, "n_intervals"), Input(ids.EXPANDED, "data"))
    @_store_errors(no_update, _unavailable)
    def draw_map(state_data, _tick, expanded):
        state = from_dict(state_data)
        since, until = _window(data, state)
        namespaces = list(state.namespaces) or None
        keep = map_builder.edge_matcher(state.verdicts, state.protocols, _pod_in_namespaces(state))
        if state.changes:
            changes = data.service_map_changes(since, until, namespaces)
            added = [e for e in changes.added if keep(e)]
            removed = [e for e in changes.removed if keep(e)]
            view = map_builder.build_elements(map_builder.filter_map(changes.current, keep), added, removed,
                                              expanded or ())
            extra = f", {len(added)} new and {len(removed)} gone vs the previous window"
        else:
            view = map_builder.build_elements(map_builder.filter_map(data.service_map(since, until, namespaces), keep),
                                              expanded=expanded or ())
            extra = ""
        collapsed = f"; {len(view.collapsed)} namespaces collapsed (click one to expand)" if view.collapsed else ""
        summary = (f"{flows.format_time(since)} to {flows.format_time(until)} UTC: {view.workloads} workloads, "
                   f"{view.edges} connection classes{extra}{collapsed}")
        return view.elements, summary

    @app.callback(Output(ids.SELECTION, "data"), Output(ids.EXPANDED, "data"),
                  Input(ids.MAP, "tapNodeData"), Input(ids.MAP, "tapEdgeData"),
                  Input(ids.CLEAR_SELECTION, "n_clicks"), State(ids.EXPANDED, "data"),
                  prevent_initial_call=True)
    def select(node, edge, _clear, expanded):
        expanded = list(expanded or [])
        if ctx.triggered_id == ids.CLEAR_SELECTION:
            return None, no_update
        if ctx.triggered[0]["prop_id"] == f"{ids.MAP}.tapEdgeData":
            return parse_selection(edge["selection"]), no_update
        if node["kind"] == "namespace":  # toggles a namespace between one node and its workloads
            ns = node["namespace"]
            return no_update, [n for n in expanded if n != ns] if ns in expanded else sorted(expanded + [ns])
        return {"kind": "node", "id": node["id"]}, no_update

    @app.callback(Output(ids.SELECTION_TEXT, "children"), Input(ids.SELECTION, "data"))
    def describe_selection(selection):
        if not selection:
            return "nothing selected: the table shows every flow of the view; click a node or an edge"
        if selection["kind"] == "edge":
            return (f"edge {selection['source']} -> {selection['target']} "
                    f"{selection['protocol']}/{selection['port']} {selection['verdict']}")
        return f"node {selection['id']}" if selection["kind"] == "node" else (
            f"between {selection['source']} and {selection['target']}")

    app.clientside_callback(
        """function(state, selection, tick) {
            const ctx = window.dash_clientside.callback_context;
            const live = ctx.triggered.some(t => t.prop_id === "%s.n_intervals");
            // a grid not created yet asks for its first rows anyway: nothing to purge
            try {
                const api = window.dash_ag_grid.getApi("%s");
                // live refresh only while the newest rows are in view: never pull rows from under a reader
                if (!live || api.getFirstDisplayedRowIndex() === 0) { api.purgeInfiniteCache(); }
            } catch (e) {}
            return Date.now();
        }""" % (ids.TICK, ids.GRID),
        Output(ids.GRID_RESET, "data"), Input(ids.STATE, "data"), Input(ids.SELECTION, "data"),
        Input(ids.TICK, "n_intervals"),
        prevent_initial_call=True)

    @app.callback(Output(ids.GRID, "getRowsResponse"), Output(ids.GRID_TOTAL, "children"),
                  Input(ids.GRID, "getRowsRequest"), State(ids.STATE, "data"), State(ids.SELECTION, "data"))
    @_store_errors({"rowData": [], "rowCount": 0}, _unavailable)
    def flow_rows(request, state_data, selection):
        if not request:
            return no_update, no_update
        state = from_dict(state_data)
        since, until = _window(data, state)
        sort, descending = flows.sort_from_model(request.get("sortModel"), TABLE_COLUMNS)
        start = int(request.get("startRow") or 0)
        limit = max(1, min(int(request.get("endRow") or start + PAGE_SIZE) - start, 10_000))
        page = data.flows_page(flow_filters(state), since, until, start, limit, sort, descending, selection)
        return ({"rowData": flows.grid_rows(page.rows), "rowCount": page.total},
                f"{page.total} flows")

    @app.callback(Output(ids.DETAILS, "children"), Output(ids.DETAILS_JSON, "children"),
                  Input(ids.GRID, "cellClicked"), prevent_initial_call=True)
    @_store_errors(_unavailable, "")
    def flow_details(cell):
        uuid = (cell or {}).get("rowId")
        flow = data.flow(uuid) if uuid else None
        if flow is None:
            return "flow not found", ""
        table = html.Table([html.Tr([html.Td(k, style={"color": "#546e7a", "paddingRight": "8px"}),
                                     html.Td(v)]) for k, v in flows.flow_fields(flow)])
        return table, flows.flow_json(flow)

    @app.callback(Output(ids.RED, "figure"), Output(ids.DNS, "figure"), Output(ids.DROPS, "figure"),
                  Input(ids.STATE, "data"), Input(ids.TICK, "n_intervals"), Input(ids.SELECTION, "data"))
    @_store_errors(no_update, no_update, no_update)
    def panels(state_data, _tick, selection):
        state = from_dict(state_data)
        since, until = _window(data, state)
        step = step_for(since, until)
        server, client = _workloads(selection)
        red = data.http_red(since, until, step, *server)
        dns = data.dns_summary(since, until, step, *client)
        drops = data.drops_by_reason(since, until, list(state.namespaces) or None)
        return figures.red_figure(red), figures.dns_figure(dns), figures.drops_figure(drops)


def _pod_in_namespaces(state: ViewState) -> str:
    """The pod filter as "namespace/prefix" for the map, as ui.state reads it for flows: a bare prefix
    applies in the chosen namespaces (which the map query narrows to: "/prefix"), else in "default"."""
    if "/" in state.pod or not state.pod:
        return state.pod
    return f"/{state.pod}" if state.namespaces else f"default/{state.pod}"


def _split(node_id: str) -> tuple[str | None, str | None]:
    """(namespace, workload) of a pod node id, (None, None) for other kinds (no per-workload panel)."""
    namespace, sep, workload = node_id.partition("/")
    return (namespace, workload) if sep and ":" not in namespace else (None, None)


def _workloads(selection: dict | None) -> tuple[tuple, tuple]:
    """(server, client) workloads for the RED and DNS panels: the selected node for both, the edge's
    server for RED and its client for DNS; nothing selected = every workload."""
    if not selection:
        return (None, None), (None, None)
    if selection["kind"] == "node":
        return _split(selection["id"]), _split(selection["id"])
    if selection["kind"] == "edge":
        return _split(selection["target"]), _split(selection["source"])
    return (None, None), (None, None)
