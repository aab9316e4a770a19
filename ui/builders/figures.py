"""Plotly figures from the store's L7 and drop summaries: HTTP RED over time, top DNS queries with their
NXDOMAINs, drops by reason. An empty input gives an empty figure that says so, not a blank plot."""

from __future__ import annotations

import datetime

import plotly.graph_objects as go
from plotly.subplots import make_subplots

from storage.results import DnsSummary, DropCount, RedPoint

MS = 1_000_000


def _time(ns: int) -> datetime.datetime:
    return datetime.datetime.fromtimestamp(ns / 1e9, tz=datetime.timezone.utc)


def empty_figure(message: str) -> go.Figure:
    fig = go.Figure()
    fig.update_layout(xaxis={"visible": False}, yaxis={"visible": False}, height=260,
                      margin={"l": 10, "r": 10, "t": 30, "b": 10},
                      annotations=[{"text": message, "showarrow": False, "font": {"size": 13}}])
    return fig


def red_figure(points: list[RedPoint]) -> go.Figure:
    """Three stacked panels per server workload: requests/s, 5xx error %, latency p50/p95/p99 (ms)."""
    if not points:
        return empty_figure("no HTTP responses in this window")
    fig = make_subplots(rows=3, cols=1, shared_xaxes=True, vertical_spacing=0.06,
                        subplot_titles=("requests/s", "errors (5xx) %", "latency ms (p50, p95, p99)"))
    series: dict[str, list[RedPoint]] = {}
    for p in points:
        series.setdefault(f"{p.namespace}/{p.workload}", []).append(p)
    for name, pts in sorted(series.items()):
        x = [_time(p.time_ns) for p in pts]
        fig.add_trace(go.Scatter(x=x, y=[round(p.rate, 3) for p in pts], name=f"{name} req/s",
                                 mode="lines+markers", legendgroup=name), row=1, col=1)
        fig.add_trace(go.Scatter(x=x, y=[round(100 * p.error_ratio, 2) for p in pts],
                                 name=f"{name} error %", mode="lines+markers", legendgroup=name),
                      row=2, col=1)
        for q in ("p50", "p95", "p99"):
            fig.add_trace(go.Scatter(
                x=x, y=[None if getattr(p, f"{q}_ns") is None else round(getattr(p, f"{q}_ns") / MS, 3)
                        for p in pts],
                name=f"{name} {q}", mode="lines", legendgroup=name,
                line={"dash": {"p50": "solid", "p95": "dash", "p99": "dot"}[q]}), row=3, col=1)
    fig.update_layout(height=520, margin={"l": 40, "r": 10, "t": 30, "b": 30}, legend={"font": {"size": 10}})
    return fig


def dns_figure(summary: DnsSummary) -> go.Figure:
    """Top queries as horizontal bars: answered vs NXDOMAIN."""
    top = summary.top_queries
    if not top:
        return empty_figure("no DNS queries in this window")
    names = [q.query for q in reversed(top)]
    fig = go.Figure([
        go.Bar(y=names, x=[q.queries - q.nxdomain for q in reversed(top)], name="answered",
               orientation="h", marker_color="#00838f"),
        go.Bar(y=names, x=[q.nxdomain for q in reversed(top)], name="NXDOMAIN", orientation="h",
               marker_color="#c62828"),
    ])
    fig.update_layout(barmode="stack", title="top DNS queries", height=300,
                      margin={"l": 10, "r": 10, "t": 40, "b": 30})
    fig.update_yaxes(automargin=True)
    return fig


def drop_label(d: DropCount) -> str:
    return f"{d.reason} ({d.kernel_reason})" if d.kernel_reason else d.reason


def drops_figure(drops: list[DropCount]) -> go.Figure:
    if not drops:
        return empty_figure("no drops in this window")
    labels = [drop_label(d) for d in reversed(drops)]
    fig = go.Figure([go.Bar(y=labels, x=[d.flows for d in reversed(drops)], orientation="h",
                            marker_color="#c62828", name="drops")])
    fig.update_layout(title="drops by reason", height=300, margin={"l": 10, "r": 10, "t": 40, "b": 30})
    fig.update_yaxes(automargin=True)
    return fig
