#!/usr/bin/env python3
"""The one source of flowscope's Grafana provisioning: datasources, the dashboard provider and every
dashboard JSON under deploy/grafana/. Run it after editing; `--check` exits 1 when a committed file
differs from what this script generates (the tests run the same check).

    .venv/bin/python deploy/grafana/generate.py          # rewrite the files
    .venv/bin/python deploy/grafana/generate.py --check  # verify them

The service-map panels are built on storage's own service-map SQL (storage.queries.service_map),
so Grafana, the UI and the JSON API draw the same map.

Prometheus panels read Hubble's metrics as flowscope's collectors export them with
collector.metrics.DEFAULT_METRICS (httpV2 with source/destination namespace+workload labels, dns with
the query label...). ClickHouse panels read storage's tables (flows, edges_1m, http_1m, dns_1m) in the
database named by the hidden `database` variable; time bucketing uses plain intDiv arithmetic because
Debian's ClickHouse 18.16 lacks toStartOfInterval.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import pathlib
import sys

# Run as a script from a checkout (with the venv's python: storage needs protobuf): the repository root
# holds the shared tables and storage's service-map SQL.
sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[2]))
from common.protocols import L4_NUMBERS  # noqa: E402
from storage.queries.service_map import edges_sql, node_id_sql  # noqa: E402

ROOT = pathlib.Path(__file__).resolve().parent
PROMETHEUS = {"type": "prometheus", "uid": "flowscope-prometheus"}
CLICKHOUSE = {"type": "grafana-clickhouse-datasource", "uid": "flowscope-clickhouse"}
# The relay's JSON HTTP API (ui/json_api.py) through the Infinity datasource: single-machine installs
# on the embedded store (chdb), which Grafana's ClickHouse plugin cannot reach.
INFINITY = {"type": "yesoreyeram-infinity-datasource", "uid": "flowscope-infinity"}
WINDOW_PARAMS = (("since", "${__from}"), ("until", "${__to}"))
RATE = "$__rate_interval"
# grafana-clickhouse-datasource v4 query formats.
FORMAT_TIMESERIES, FORMAT_TABLE = 0, 1
# Storage keeps IP protocol numbers; panels show the names flows use.
PROTOCOL_NAME_SQL = ("multiIf(" + ", ".join(f"protocol = {n}, '{name}'" for name, n in L4_NUMBERS.items())
                     + ", toString(protocol))")


@dataclasses.dataclass(frozen=True)
class ClickHouseQuery:
    """What a ClickHouse target must return: tests run `sql` (macros expanded) on both backends."""

    dashboard: str
    panel: str
    ref_id: str
    sql: str
    columns: tuple[str, ...]
    format: int


@dataclasses.dataclass(frozen=True)
class PromQuery:
    dashboard: str
    panel: str
    ref_id: str
    expr: str


@dataclasses.dataclass(frozen=True)
class ApiQuery:
    """An Infinity target: GET `url` with `params`, rows under `root` ("" = the body is the list)."""

    dashboard: str
    panel: str
    ref_id: str
    url: str
    params: tuple[tuple[str, str], ...]
    root: str
    columns: tuple[str, ...]


class Dashboard:
    """Collects panels in a 24-column grid, two per row unless told otherwise."""

    def __init__(self, uid: str, title: str, description: str) -> None:
        self.uid, self.title, self.description = uid, title, description
        self.panels: list[dict] = []
        self.clickhouse: list[ClickHouseQuery] = []
        self.prometheus: list[PromQuery] = []
        self.api: list[ApiQuery] = []
        self.variables: list[dict] = []
        self._x = self._y = 0
        self._row_h = 0

    def _place(self, w: int, h: int) -> dict:
        if self._x + w > 24:
            self._x, self._y = 0, self._y + self._row_h
            self._row_h = 0
        pos = {"h": h, "w": w, "x": self._x, "y": self._y}
        self._x += w
        self._row_h = max(self._row_h, h)
        return pos

    def _panel(self, kind: str, title: str, datasource: dict, targets: list[dict], w: int, h: int,
               unit: str = "", description: str = "", options: dict | None = None) -> dict:
        panel = {"id": len(self.panels) + 1, "type": kind, "title": title, "description": description,
                 "datasource": datasource, "gridPos": self._place(w, h), "targets": targets,
                 "fieldConfig": {"defaults": {"unit": unit} if unit else {}, "overrides": []},
                 "options": options or {}}
        self.panels.append(panel)
        return panel

    def prom(self, title: str, exprs: list[tuple[str, str]], unit: str = "short", kind: str = "timeseries",
             w: int = 12, h: int = 8, description: str = "") -> None:
        """A Prometheus panel; `exprs` are (PromQL, legend) pairs."""
        targets = []
        for i, (expr, legend) in enumerate(exprs):
            ref = chr(ord("A") + i)
            targets.append({"datasource": PROMETHEUS, "expr": expr, "legendFormat": legend, "refId": ref,
                            "instant": kind in ("table", "bargauge"), "range": kind not in ("table", "bargauge")})
            self.prometheus.append(PromQuery(self.uid, title, ref, expr))
        self._panel(kind, title, PROMETHEUS, targets, w, h, unit, description)

    def sql(self, title: str, queries: list[tuple[str, tuple[str, ...]]], kind: str = "table",
            unit: str = "", w: int = 12, h: int = 8, description: str = "", options: dict | None = None) -> None:
        """A ClickHouse panel; `queries` are (SQL, expected columns) pairs."""
        fmt = FORMAT_TIMESERIES if kind == "timeseries" else FORMAT_TABLE
        targets = []
        for i, (sql, columns) in enumerate(queries):
            ref = chr(ord("A") + i)
            targets.append({"datasource": CLICKHOUSE, "editorType": "sql", "format": fmt,
                            "queryType": "timeseries" if fmt == FORMAT_TIMESERIES else "table",
                            "rawSql": sql, "refId": ref})
            self.clickhouse.append(ClickHouseQuery(self.uid, title, ref, sql, columns, fmt))
        self._panel(kind, title, CLICKHOUSE, targets, w, h, unit, description, options)

    def infinity(self, title: str, queries: list[tuple[str, dict, str, tuple[tuple[str, str], ...]]],
                 kind: str = "table", w: int = 12, h: int = 8, description: str = "") -> None:
        """A panel on the relay's JSON API; `queries` are (url, {selector: type}, root, extra params)."""
        targets = []
        for i, (url, columns, root, extra) in enumerate(queries):
            ref = chr(ord("A") + i)
            params = WINDOW_PARAMS + extra
            fmt = "table" if kind != "nodeGraph" else ("node-graph-nodes" if root == "nodes" else "node-graph-edges")
            targets.append({"datasource": INFINITY, "refId": ref, "type": "json", "source": "url",
                            "parser": "backend", "format": fmt, "url": url, "root_selector": root,
                            "url_options": {"method": "GET", "params": [{"key": k, "value": v} for k, v in params]},
                            "columns": [{"selector": c, "text": c, "type": t} for c, t in columns.items()]})
            self.api.append(ApiQuery(self.uid, title, ref, url, params, root, tuple(columns)))
        self._panel(kind, title, INFINITY, targets, w, h, "", description)

    def prom_variable(self, name: str, label: str, metric: str) -> str:
        """A multi-value variable of `label`'s values (All = any, also series without the label);
        returns the PromQL matcher to put in the selectors."""
        query = f"label_values({metric}, {label})"
        self.variables.append({"name": name, "label": name, "type": "query", "datasource": PROMETHEUS,
                               "query": {"query": query, "refId": "PrometheusVariableQueryEditor-VariableQuery"},
                               "definition": query, "refresh": 2, "includeAll": True, "multi": True,
                               "allValue": ".*", "current": {"text": "All", "value": "$__all"}, "sort": 1})
        return f'{label}=~"${name}"'

    def json(self) -> dict:
        database = {"name": "database", "type": "constant", "query": "flowscope", "hide": 2,
                    "label": "ClickHouse database", "current": {"text": "flowscope", "value": "flowscope"}}
        return {
            "uid": self.uid, "title": self.title, "description": self.description,
            "tags": ["flowscope", "hubble"], "timezone": "browser", "editable": True,
            "schemaVersion": 39, "version": 1, "refresh": "30s", "graphTooltip": 1,
            "time": {"from": "now-1h", "to": "now"},
            "templating": {"list": [database, *self.variables]}, "annotations": {"list": []}, "links": [],
            "panels": self.panels,
        }


def bucket(column: str) -> str:
    """The start of the Grafana interval that `column` (DateTime) falls in, portable to ClickHouse 18.16."""
    return f"toDateTime(intDiv(toUInt32({column}), $__interval_s) * $__interval_s)"


T = "${database}"


def cluster_overview() -> Dashboard:
    d = Dashboard("flowscope-overview", "flowscope / Cluster overview",
                  "Flows, verdicts, drops and top talkers across the cluster")
    d.prom("Flows/s by verdict", [
        (f"sum by (verdict) (rate(hubble_flows_processed_total[{RATE}]))", "{{verdict}}")], "ops")
    d.prom("Flows/s by type", [
        (f"sum by (type, subtype) (rate(hubble_flows_processed_total[{RATE}]))", "{{type}} {{subtype}}")], "ops")
    d.prom("Drops/s by reason", [
        (f"sum by (reason, protocol) (rate(hubble_drop_total[{RATE}]))", "{{reason}} ({{protocol}})")], "ops")
    d.prom("Flows/s to the world", [
        (f"sum by (protocol, verdict) (rate(hubble_flows_to_world_total[{RATE}]))", "{{protocol}} {{verdict}}")],
        "ops")
    d.prom("Top destination ports", [
        (f"topk(10, sum by (protocol, port) (rate(hubble_port_distribution_total[{RATE}])))",
         "{{protocol}}/{{port}}")], "ops")
    d.prom("TCP flags and ICMP", [
        (f"sum by (flag) (rate(hubble_tcp_flags_total[{RATE}]))", "{{flag}}"),
        (f"sum by (family, type) (rate(hubble_icmp_total[{RATE}]))", "ICMP {{family}} {{type}}")], "ops")
    d.sql("Flows by verdict (stored)", [(
        f"SELECT {bucket('ts')} AS time, multiIf(verdict = 1, 'forwarded', verdict = 2, 'dropped', "
        "verdict = 4, 'audit', 'other') AS verdict, count() AS flows "
        f"FROM {T}.flows WHERE $__timeFilter(ts) GROUP BY time, verdict ORDER BY time",
        ("time", "verdict", "flows"))], kind="timeseries", unit="short")
    d.sql("Top talkers", [(
        "SELECT client_namespace, client_workload, server_namespace, server_workload, sumMerge(flows) AS flows, "
        f"sumMerge(bytes) AS bytes FROM {T}.edges_1m WHERE $__timeFilter(minute) "
        "GROUP BY client_namespace, client_workload, server_namespace, server_workload "
        "ORDER BY bytes DESC, flows DESC LIMIT 20",
        ("client_namespace", "client_workload", "server_namespace", "server_workload", "flows", "bytes"))])
    return d


def service_map() -> Dashboard:
    d = Dashboard("flowscope-service-map", "flowscope / Service map",
                  "Who talks to whom, from the flow store's per-minute edges")
    src, dst = node_id_sql("client"), node_id_sql("server")
    # storage's own service-map query (the UI's and the JSON API's), per node and per edge
    edges_of_window = f"({edges_sql(f'{T}.edges_1m', '$__timeFilter(minute)')})"
    nodes = (
        "SELECT id, any(title) AS title, any(subtitle) AS subtitle, sum(n) AS mainstat, "
        "sum(dropped) AS secondarystat FROM ("
        f"SELECT {src} AS id, client_workload AS title, if(client_kind = 'pod', client_namespace, client_kind) "
        f"AS subtitle, edge_flows AS n, toUInt64(0) AS dropped FROM {edges_of_window} "
        "UNION ALL "
        f"SELECT {dst} AS id, server_workload AS title, if(server_kind = 'pod', server_namespace, server_kind) "
        f"AS subtitle, edge_flows AS n, edge_flows * (verdict = 2) AS dropped FROM {edges_of_window}"
        ") GROUP BY id ORDER BY id")
    edges = (
        f"SELECT concat({src}, ' -> ', {dst}, ':', toString(server_port), '/', toString(protocol)) AS id, "
        f"{src} AS source, "
        f"{dst} AS target, sum(edge_flows) AS mainstat, sum(edge_errors) AS secondarystat, "
        "server_port AS detail__port, protocol AS detail__protocol "
        f"FROM {edges_of_window} "
        "GROUP BY id, source, target, server_port, protocol ORDER BY id")
    d.sql("Service map", [
        (nodes, ("id", "title", "subtitle", "mainstat", "secondarystat")),
        (edges, ("id", "source", "target", "mainstat", "secondarystat", "detail__port", "detail__protocol")),
    ], kind="nodeGraph", w=24, h=16,
        description="Nodes are workloads (mainstat: flows, secondarystat: dropped); edges carry flows "
                    "and L7 errors",
        options={"nodes": {"mainStatUnit": "short", "secondaryStatUnit": "short"},
                 "edges": {"mainStatUnit": "short", "secondaryStatUnit": "short"}})
    d.sql("Connections", [(
        "SELECT client_namespace, client_workload, server_namespace, server_workload, server_port, "
        f"{PROTOCOL_NAME_SQL} AS proto, multiIf(verdict = 1, 'forwarded', verdict = 2, 'dropped', "
        "verdict = 4, 'audit', toString(verdict)) AS verdict_name, sum(edge_flows) AS flows, "
        f"sum(edge_bytes) AS bytes FROM {edges_of_window} "
        "GROUP BY client_namespace, client_workload, server_namespace, server_workload, server_port, proto, "
        "verdict_name ORDER BY flows DESC LIMIT 200",
        ("client_namespace", "client_workload", "server_namespace", "server_workload", "server_port", "proto",
         "verdict_name", "flows", "bytes"))], w=24)
    return d


def http_golden_signals() -> Dashboard:
    d = Dashboard("flowscope-http", "flowscope / HTTP golden signals",
                  "Traffic, errors and latency per workload from HTTP responses seen without a proxy")
    ns = d.prom_variable("namespace", "destination_namespace", "hubble_http_requests_total")
    by = "destination_namespace, destination_workload"
    legend = "{{destination_namespace}}/{{destination_workload}}"
    requests = f"hubble_http_requests_total{{{ns}}}"
    d.prom("Requests/s by workload", [
        (f"sum by ({by}) (rate({requests}[{RATE}]))", legend)], "reqps")
    d.prom("Error ratio (5xx) by workload", [
        (f'sum by ({by}) (rate(hubble_http_requests_total{{status=~"5..", {ns}}}[{RATE}])) / '
         f"sum by ({by}) (rate({requests}[{RATE}]))", legend)], "percentunit")
    d.prom("Latency p50 / p95 / p99 by workload", [
        (f"histogram_quantile({q}, sum by (le, {by}) "
         f"(rate(hubble_http_request_duration_seconds_bucket{{{ns}}}[{RATE}])))",
         f"p{int(q * 100)} {legend}") for q in (0.5, 0.95, 0.99)], "s")
    d.prom("Requests/s by status and method", [
        (f"sum by (status, method) (rate({requests}[{RATE}]))", "{{method}} {{status}}")], "reqps")
    d.prom("gRPC errors/s by workload and grpc-status", [
        (f'sum by ({by}, grpc_status) (rate(hubble_http_requests_total{{grpc_status!~"|0", {ns}}}[{RATE}]))',
         f"{legend} grpc-status {{{{grpc_status}}}}")], "reqps",
        description="gRPC answers HTTP 200 and reports failure in the grpc-status trailer "
                    "(needs the httpV2 option grpcStatus)")
    d.prom("Requests/s by client workload", [
        (f"sum by (source_namespace, source_workload, {by}) (rate(hubble_http_requests_total"
         f'{{reporter="client", {ns}}}[{RATE}]))',
         "{{source_workload}} -> {{destination_workload}}")], "reqps")
    d.sql("RED per workload (stored)", [(
        "SELECT namespace, workload, sum(n) AS requests, sum(e) AS errors, "
        "if(sum(n) = 0, 0, sum(e) / sum(n)) AS error_ratio FROM ("
        "SELECT namespace, workload, code, sumMerge(requests) AS n, "
        f"if(code >= 500, sumMerge(requests), 0) AS e FROM {T}.http_1m WHERE $__timeFilter(minute) "
        "GROUP BY namespace, workload, code) GROUP BY namespace, workload ORDER BY requests DESC",
        ("namespace", "workload", "requests", "errors", "error_ratio"))])
    d.sql("Latency quantiles per workload (stored)", [(
        "SELECT namespace, workload, q[1] / 1e9 AS p50_seconds, q[2] / 1e9 AS p95_seconds, "
        "q[3] / 1e9 AS p99_seconds FROM (SELECT namespace, workload, "
        f"quantilesTDigestMerge(0.5, 0.95, 0.99)(latency) AS q FROM {T}.http_1m "
        "WHERE $__timeFilter(minute) GROUP BY namespace, workload) ORDER BY p95_seconds DESC",
        ("namespace", "workload", "p50_seconds", "p95_seconds", "p99_seconds"))])
    d.sql("Slowest requests", [(
        # responses travel server -> client: their source is the server
        "SELECT ts AS time, dst_workload AS client_workload, src_workload AS server_workload, http_method, "
        "http_url, http_code, "
        f"latency_ns / 1e9 AS latency_seconds FROM {T}.flows WHERE $__timeFilter(ts) AND l7_proto = 2 "
        "AND l7_type = 2 ORDER BY latency_ns DESC LIMIT 50",
        ("time", "client_workload", "server_workload", "http_method", "http_url", "http_code", "latency_seconds"))],
        w=24)
    return d


def dns() -> Dashboard:
    d = Dashboard("flowscope-dns", "flowscope / DNS", "DNS queries, answers and failures")
    d.prom("Queries/s by namespace", [
        (f"sum by (source_namespace) (rate(hubble_dns_queries_total[{RATE}]))", "{{source_namespace}}")], "ops")
    d.prom("Responses/s by rcode", [
        (f"sum by (rcode) (rate(hubble_dns_responses_total[{RATE}]))", "{{rcode}}")], "ops")
    d.prom("Top queried names", [
        (f"topk(10, sum by (query) (rate(hubble_dns_queries_total[{RATE}])))", "{{query}}")], "ops")
    d.prom("Failed lookups ratio", [
        (f'sum(rate(hubble_dns_responses_total{{rcode!="No Error"}}[{RATE}])) / '
         f"sum(rate(hubble_dns_responses_total[{RATE}]))", "failed")], "percentunit")
    d.prom("Answer record types", [
        (f"sum by (type, qtypes) (rate(hubble_dns_response_types_total[{RATE}]))", "{{qtypes}} -> {{type}}")],
        "ops")
    d.sql("Failing queries (stored)", [(
        "SELECT namespace, workload, query, rcode, sumMerge(responses) AS responses "
        f"FROM {T}.dns_1m WHERE $__timeFilter(minute) AND rcode != 0 "
        "GROUP BY namespace, workload, query, rcode ORDER BY responses DESC LIMIT 50",
        ("namespace", "workload", "query", "rcode", "responses"))])
    d.sql("Queries over time (stored)", [(
        f"SELECT {bucket('minute')} AS time, sumMerge(requests) AS queries, sumMerge(responses) AS answers "
        f"FROM {T}.dns_1m WHERE $__timeFilter(minute) GROUP BY time ORDER BY time",
        ("time", "queries", "answers"))], kind="timeseries", unit="short", w=24)
    return d


def policy() -> Dashboard:
    d = Dashboard("flowscope-policy", "flowscope / Policy verdicts",
                  "What network policy allowed, denied and audited")
    d.prom("Verdicts/s by direction, match and action", [
        (f"sum by (direction, match, action) (rate(hubble_policy_verdicts_total[{RATE}]))",
         "{{direction}} {{match}} {{action}}")], "ops")
    d.prom("Denied/s by source and destination", [
        (f'sum by (source, destination) (rate(hubble_policy_verdicts_total{{action="dropped"}}[{RATE}]))',
         "{{source}} -> {{destination}}")], "ops")
    d.prom("Policy drops/s by namespace", [
        (f'sum by (source, destination) (rate(hubble_drop_total{{reason=~"POLICY_.*"}}[{RATE}]))',
         "{{source}} -> {{destination}}")], "ops")
    d.sql("Denied and audited connections (stored)", [(
        "SELECT src_namespace, src_workload, dst_namespace, dst_workload, dst_port, "
        "multiIf(verdict = 2, 'denied', 'audit') AS action, count() AS flows, max(ts) AS last_seen "
        f"FROM {T}.flows WHERE $__timeFilter(ts) AND (verdict = 4 OR (verdict = 2 AND drop_reason IN (133, 181))) "
        "GROUP BY src_namespace, src_workload, dst_namespace, dst_workload, dst_port, action "
        "ORDER BY flows DESC LIMIT 100",
        ("src_namespace", "src_workload", "dst_namespace", "dst_workload", "dst_port", "action", "flows",
         "last_seen"))])
    return d


def health() -> Dashboard:
    d = Dashboard("flowscope-health", "flowscope / Health",
                  "flowscope's own collectors and relay: throughput, losses, buffers, storage, nodes")
    d.prom("Events/s per process", [
        ("flowscope_events_per_second", "{{job}} {{instance}}"),
        (f"rate(flowscope_events_total[{RATE}])", "{{job}} {{instance}} (rate)")], "ops")
    d.prom("Lost events/s by source", [
        (f"sum by (job, source) (rate(flowscope_lost_events_total[{RATE}]))", "{{job}} {{source}}"),
        (f"sum by (source) (rate(hubble_lost_events_total[{RATE}]))", "hubble {{source}}")], "ops")
    d.prom("Ring buffer fill", [("flowscope_ring_buffer_fill_ratio", "{{instance}}")], "percentunit")
    d.prom("L7 connections past the capture budget", [
        (f"sum by (instance, protocol) (increase(flowscope_l7_capture_budget_exhausted_total[{RATE}]))",
         "{{instance}} {{protocol}}")], "short")
    d.prom("Storage write latency p50 / p99", [
        (f"histogram_quantile({q}, sum by (le) (rate(flowscope_storage_write_seconds_bucket[{RATE}])))",
         f"p{int(q * 100)}") for q in (0.5, 0.99)], "s")
    d.prom("Storage rows/s and spool", [
        (f"rate(flowscope_storage_rows_written_total[{RATE}])", "rows/s {{instance}}"),
        ("flowscope_storage_spool_bytes", "spool bytes {{instance}}")], "short")
    d.prom("Nodes", [("flowscope_connected_nodes", "connected"), ("flowscope_unavailable_nodes", "unavailable")],
           "short")
    d.prom("Metric series and refusals", [
        ("sum by (metric) (flowscope_metrics_series)", "{{metric}} series"),
        (f"sum by (metric) (rate(flowscope_metrics_cardinality_refused_total[{RATE}]))", "{{metric}} refused/s")],
        "short")
    d.sql("Rows stored per interval", [(
        f"SELECT {bucket('ts')} AS time, node, count() AS flows FROM {T}.flows WHERE $__timeFilter(ts) "
        "GROUP BY time, node ORDER BY time",
        ("time", "node", "flows"))], kind="timeseries", unit="short")
    return d


def embedded_store() -> Dashboard:
    d = Dashboard("flowscope-embedded", "flowscope / Embedded store (JSON API)",
                  "The relay's JSON HTTP API through the Infinity datasource: for single-machine installs on "
                  "the embedded store")
    num, text = "number", "string"
    d.infinity("Service map", [
        ("/api/v1/servicemap", {"id": text, "title": text, "subtitle": text, "mainstat": num, "secondarystat": num},
         "nodes", ()),
        ("/api/v1/servicemap", {"id": text, "source": text, "target": text, "mainstat": num, "secondarystat": num,
                                "detail__port": num, "detail__verdict": text}, "edges", ()),
    ], kind="nodeGraph", w=24, h=14,
        description="Nodes: flows in (mainstat) and out; edges: flows and L7 error rate")
    d.infinity("HTTP RED per workload", [(
        "/api/v1/red", {"time": "timestamp", "namespace": text, "workload": text, "rate": num, "error_ratio": num,
                        "p95_ms": num}, "", (("step", "60"),))])
    d.infinity("Drops by reason", [(
        "/api/v1/drops", {"reason": text, "kernel_reason": text, "flows": num}, "", ())])
    d.infinity("Top DNS queries", [(
        "/api/v1/dns", {"query": text, "queries": num, "nxdomain": num, "errors": num}, "top_queries", ())])
    d.infinity("Top talkers", [(
        "/api/v1/talkers", {"source": text, "target": text, "flows": num, "bytes": num}, "", (("limit", "20"),))])
    d.infinity("Recent denied flows", [(
        "/api/v1/flows", {"time": "timestamp", "source_namespace": text, "source_pod": text,
                          "destination_namespace": text, "destination_pod": text, "destination_port": num,
                          "drop_reason": text, "summary": text}, "", (("verdict", "DROPPED"), ("limit", "100")))],
        w=24)
    return d


def dashboards() -> list[Dashboard]:
    return [cluster_overview(), service_map(), http_golden_signals(), dns(), policy(), health(), embedded_store()]


def datasources_yaml() -> str:
    return f"""# Generated by deploy/grafana/generate.py — edit the generator, not this file.
apiVersion: 1
datasources:
  - name: flowscope Prometheus
    uid: {PROMETHEUS['uid']}
    type: prometheus
    access: proxy
    url: ${{FLOWSCOPE_PROMETHEUS_URL:-http://localhost:9090}}
    isDefault: true
    jsonData:
      timeInterval: 15s
  - name: flowscope ClickHouse
    uid: {CLICKHOUSE['uid']}
    type: {CLICKHOUSE['type']}
    jsonData:
      host: ${{FLOWSCOPE_CLICKHOUSE_HOST:-localhost}}
      port: ${{FLOWSCOPE_CLICKHOUSE_PORT:-9000}}
      protocol: native
      secure: false
      username: ${{FLOWSCOPE_CLICKHOUSE_USER:-default}}
      defaultDatabase: flowscope
    secureJsonData:
      password: ${{FLOWSCOPE_CLICKHOUSE_PASSWORD:-}}
  - name: flowscope JSON API
    uid: {INFINITY['uid']}
    type: {INFINITY['type']}
    url: ${{FLOWSCOPE_API_URL:-http://localhost:4246}}
    jsonData:
      allowedHosts: ["${{FLOWSCOPE_API_URL:-http://localhost:4246}}"]
      auth_method: bearerToken
    secureJsonData:
      bearerToken: ${{FLOWSCOPE_API_TOKEN:-}}
"""


def dashboards_yaml() -> str:
    return """# Generated by deploy/grafana/generate.py — edit the generator, not this file.
apiVersion: 1
providers:
  - name: flowscope
    folder: flowscope
    type: file
    disableDeletion: false
    allowUiUpdates: false
    options:
      path: /var/lib/grafana/dashboards/flowscope
"""


def files() -> dict[pathlib.Path, str]:
    """Every generated file (path -> content)."""
    out = {ROOT / "provisioning" / "datasources" / "flowscope.yaml": datasources_yaml(),
           ROOT / "provisioning" / "dashboards" / "flowscope.yaml": dashboards_yaml()}
    for dashboard in dashboards():
        out[ROOT / "dashboards" / f"{dashboard.uid}.json"] = json.dumps(dashboard.json(), indent=2) + "\n"
    return out


def stale_files() -> list[pathlib.Path]:
    return [path for path, text in files().items() if not path.exists() or path.read_text() != text]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 if a generated file is out of date")
    args = parser.parse_args(argv)
    if args.check:
        stale = stale_files()
        for path in stale:
            print(f"out of date: {path.relative_to(ROOT)} (run deploy/grafana/generate.py)", file=sys.stderr)
        return 1 if stale else 0
    for path, text in files().items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        print(f"wrote {path.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
