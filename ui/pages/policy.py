"""The policy page: least-privilege policy suggested per workload from stored flows (enforcer.suggest),
the evidence behind each rule, the diff against the policy applied to the datapath, YAML download."""

from __future__ import annotations


import dash
from dash import Input, Output, State, dcc, html

from ui import ids
from ui.builders import policy as policy_builder
from ui.data import UIData
from ui.pages import PageOptions

NAME = "Policies"
PATH = "/policies"
WINDOWS = {"1h": 3600, "24h": 86400, "7d": 7 * 86400}
NS = 1_000_000_000
PANEL = {"border": "1px solid #cfd8dc", "borderRadius": "4px", "padding": "8px", "margin": "8px 16px",
         "background": "#ffffff"}
PRE = {"fontSize": "12px", "background": "#f5f5f5", "padding": "8px", "overflow": "auto", "maxHeight": "420px"}


def layout(**_query) -> html.Div:
    return html.Div([
        html.Div([
            dcc.RadioItems(list(WINDOWS), "1h", id="policy-window", inline=True,
                           inputStyle={"marginRight": "4px", "marginLeft": "8px"}),
            dcc.RadioItems([{"label": "Kubernetes NetworkPolicy", "value": "k8s"},
                            {"label": "CiliumNetworkPolicy", "value": "cilium"}], "k8s", id="policy-format",
                           inline=True, inputStyle={"marginRight": "4px", "marginLeft": "8px"}),
            dcc.Dropdown(id=ids.POLICY_WORKLOAD, placeholder="workload", style={"minWidth": "280px"}),
            html.Button("download YAML", id=ids.POLICY_DOWNLOAD_BUTTON, n_clicks=0),
            dcc.Download(id=ids.POLICY_DOWNLOAD),
        ], style={"display": "flex", "gap": "12px", "alignItems": "center", "padding": "8px 16px"}),
        html.Div(id=ids.POLICY_VIEW),
    ])


def _window(data: UIData, name: str) -> tuple[int, int]:
    now = data.now_ns()
    now -= now % (60 * NS)  # a minute: suggestions are cached, and read every flow of the window
    return now - WINDOWS.get(name, 86400) * NS, now


def register(app: dash.Dash, data: UIData, options: PageOptions) -> None:
    dash.register_page(__name__, path=PATH, name=NAME, layout=layout, order=1)

    def suggestions(window: str, fmt: str) -> dict:
        since, until = _window(data, window)
        return {f"{s.namespace}/{s.workload}": s for s in data.suggestions(since, until, fmt)}

    @app.callback(Output(ids.POLICY_WORKLOAD, "options"), Output(ids.POLICY_WORKLOAD, "value"),
                  Input("policy-window", "value"), Input("policy-format", "value"),
                  State(ids.POLICY_WORKLOAD, "value"))
    def workloads(window, fmt, chosen):
        names = sorted(suggestions(window, fmt))
        return names, chosen if chosen in names else (names[0] if names else None)

    @app.callback(Output(ids.POLICY_VIEW, "children"), Input(ids.POLICY_WORKLOAD, "value"),
                  State("policy-window", "value"), State("policy-format", "value"))
    def show(workload, window, fmt):
        s = suggestions(window, fmt).get(workload)
        if s is None:
            return html.Div("no workloads with flows in this window", style=PANEL)
        doc = s.document
        try:
            applied = data.applied_policies(options.pin_dir).get(
                (doc["kind"], doc["metadata"]["namespace"], doc["metadata"]["name"]))
            diff = policy_builder.diff_text(doc, applied) or "identical to the applied policy"
        except OSError as err:  # e.g. not root: the pin dir under /sys/fs/bpf is root's
            diff = f"the applied policies in {options.pin_dir} cannot be read: {err}"
        evidence = policy_builder.evidence_rows(doc)
        return html.Div([
            html.Div([html.B(s.header), *[html.Div(f"warning: {w}", style={"color": "#ef6c00"})
                                          for w in s.warnings]], style=PANEL),
            html.Div([html.B("Evidence per rule"),
                      html.Table([html.Tr([html.Th("rule"), html.Th("evidence")])] +
                                 [html.Tr([html.Td(r["rule"]), html.Td(r["evidence"])]) for r in evidence],
                                 id="policy-evidence", style={"fontSize": "13px"})], style=PANEL),
            html.Div([html.Div([html.B("Suggested policy"), html.Pre(s.yaml(), id=ids.POLICY_YAML, style=PRE)],
                               style={"flex": "1"}),
                      html.Div([html.B("Diff against the applied policy"),
                                html.Pre(diff, id="policy-diff", style=PRE)], style={"flex": "1"})],
                     style={**PANEL, "display": "flex", "gap": "12px"}),
        ])

    @app.callback(Output(ids.POLICY_DOWNLOAD, "data"), Input(ids.POLICY_DOWNLOAD_BUTTON, "n_clicks"),
                  State(ids.POLICY_WORKLOAD, "value"), State("policy-window", "value"),
                  State("policy-format", "value"), prevent_initial_call=True)
    def download(_clicks, workload, window, fmt):
        s = suggestions(window, fmt).get(workload)
        if s is None:
            return dash.no_update
        return {"content": s.yaml(), "filename": f"{s.namespace}-{s.workload}.yaml", "type": "text/yaml"}



