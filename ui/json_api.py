"""A JSON HTTP API over the flow store, shaped for Grafana's Infinity datasource and for scripts.

    server = create_http_api(store, "127.0.0.1:4246", auth=Auth(token=...))   # serves in a daemon thread
    ...
    server.stop()

Served by waitress (ui/serving.py: bounded threads, timeouts, size caps, optional TLS). Off loopback it
needs authentication (ui/auth.py, shared with the UI: a bearer token or basic auth in the Authorization
header); CORS only for the origins given (--http-api-cors-origin), never `*`.

GET endpoints (all answers are JSON; lists are top-level arrays so Infinity needs no root selector):
  /api/v1/flows       flows, newest last. namespace, pod, label, verdict, protocol, since, until, limit,
                      first, format (table: flat rows [default]; hubble: Hubble's export objects)
  /api/v1/servicemap  {"nodes": [...], "edges": [...]} with the fields Grafana's Node Graph reads
                      (nodes: id, title, subtitle, mainstat, secondarystat; edges: id, source, target,
                      mainstat, secondarystat, detail__*). since, until, namespace
  /api/v1/red         HTTP rate/errors/duration per server workload and step. since, until, step,
                      namespace, workload
  /api/v1/dns         {"series": [...], "top_queries": [...]}. since, until, step, namespace, workload, limit
  /api/v1/drops       drops by reason. since, until, namespace, limit
  /api/v1/talkers     top client -> server pairs. since, until, namespace, limit, by (bytes|flows)
  /api/v1/namespaces  [{"namespace": ...}] with flows since `since`
  /api/v1/nodes       nodes that stored flows since `since`
  /api/v1/status      the store: server and schema version, flows, bytes on disk
  /api/v1             this list of endpoints and their parameters

namespace, pod and label are bidirectional like `hubble observe --namespace/--pod/--label`: a flow
matches when its source OR its destination matches; a parameter given twice lists alternatives.
Times (since/until): RFC 3339, a Unix time in s, ms (Grafana's ${__from}) or ns, or a duration before
now ("15m", "2h", "1d"). Aggregates default to the last hour. A bad parameter gets HTTP 400 and
{"error": "parameter 'x': ..."}; an unknown path 404; missing or wrong credentials 401 (no data); a
store that does not answer 503 with Retry-After (the API keeps running and answers again once it does).
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import logging
import time
import urllib.parse
from http import HTTPStatus
from typing import Callable

from common import hubble_json
from common.filters import FilterError, build_filter
from common.flows import l4_kind, l4_ports
from common.errors import UserError
from common.timeparse import TimeError, parse_time_ns
from proto.flow import flow_pb2
from storage.errors import StorageUnavailable
from ui.auth import Auth, check_address, parse_address
from ui.serving import HTTPServer, Limits, TLSFiles, serve

log = logging.getLogger(__name__)
NS = 1_000_000_000
DEFAULT_WINDOW_NS = 3600 * NS
MAX_LIMIT = 10_000
VERDICTS = {name.lower(): number for name, number in flow_pb2.Verdict.items() if number}
PROTOCOLS = ("tcp", "udp", "sctp", "icmp", "icmpv4", "icmpv6", "dns", "http", "kafka")


class BadParameter(UserError):
    """A query parameter the API cannot use; answered with HTTP 400."""

    def __init__(self, name: str, message: str) -> None:
        super().__init__(f"parameter {name!r}: {message}")


class Params:
    """The query string of one request. Every parameter read is checked; unknown ones are refused."""

    def __init__(self, query: str, allowed: tuple[str, ...], now_ns: int) -> None:
        self.values = urllib.parse.parse_qs(query, keep_blank_values=True)
        self.now_ns = now_ns
        for name in self.values:
            if name not in allowed:
                raise BadParameter(name, f"unknown parameter; expected one of {', '.join(allowed)}")

    def all(self, name: str) -> list[str]:
        return [v for value in self.values.get(name, []) for v in value.split(",") if v]

    def one(self, name: str) -> str | None:
        values = self.values.get(name)
        if values and len(values) > 1:
            raise BadParameter(name, "given more than once")
        return values[0] if values else None

    def int(self, name: str, default: int, low: int = 1, high: int = MAX_LIMIT) -> int:
        value = self.one(name)
        if value is None:
            return default
        if not (value.isascii() and value.isdigit()) or not low <= int(value) <= high:
            raise BadParameter(name, f"{value!r} is not a whole number from {low} to {high}")
        return int(value)

    def bool(self, name: str) -> bool:
        value = self.one(name)
        if value is None:
            return False
        if value.lower() not in ("true", "false", "1", "0", ""):
            raise BadParameter(name, f"{value!r}: expected true or false")
        return value.lower() in ("true", "1", "")

    def choice(self, name: str, choices: tuple[str, ...], default: str) -> str:
        value = self.one(name) or default
        if value not in choices:
            raise BadParameter(name, f"{value!r}: expected one of {', '.join(choices)}")
        return value

    def time(self, name: str, default: int | None) -> int | None:
        value = self.one(name)
        return default if value is None or value == "" else parse_time(name, value, self.now_ns)

    def window(self) -> tuple[int, int]:
        until = self.time("until", self.now_ns)
        since = self.time("since", until - DEFAULT_WINDOW_NS)
        if since > until:
            raise BadParameter("since", "is after 'until'")
        return since, until


def parse_time(name: str, value: str, now_ns: int) -> int:
    try:
        return parse_time_ns(name, value, now_ns)
    except TimeError as err:
        raise BadParameter(name, str(err).removeprefix(f"{name} ")) from None


def rfc3339(ns: int) -> str:
    moment = datetime.datetime.fromtimestamp(ns // NS, datetime.timezone.utc)
    return moment.strftime("%Y-%m-%dT%H:%M:%S") + f".{ns % NS:09d}Z"


def _checked(name: str, flow_filter: flow_pb2.FlowFilter) -> flow_pb2.FlowFilter:
    try:
        build_filter(flow_filter)
    except FilterError as err:
        raise BadParameter(name, str(err)) from None
    return flow_filter


def flow_filters(params: Params) -> list[flow_pb2.FlowFilter]:
    """The whitelist of a /flows request: one filter per side when a bidirectional parameter is set."""
    common = flow_pb2.FlowFilter()
    for value in params.all("verdict"):
        if value.lower() not in VERDICTS:
            raise BadParameter("verdict", f"{value!r}: expected one of {', '.join(v.upper() for v in VERDICTS)}")
        common.verdict.append(VERDICTS[value.lower()])
    for value in params.all("protocol"):
        if value.lower() not in PROTOCOLS:
            raise BadParameter("protocol", f"{value!r}: expected one of {', '.join(PROTOCOLS)}")
        common.protocol.append(value.lower())
    namespaces, pods, labels = params.all("namespace"), params.all("pod"), params.all("label")
    if pods and len(namespaces) > 1:
        raise BadParameter("namespace", "only one namespace may qualify 'pod'")
    pod_values = [p if "/" in p else f"{namespaces[0] if namespaces else 'default'}/{p}" for p in pods]
    if not pods:
        pod_values = [f"{ns}/" for ns in namespaces]
    if not (pod_values or labels):
        return [common] if common.ListFields() else []
    sides = []
    for side in ("source", "destination"):
        flow_filter = flow_pb2.FlowFilter()
        flow_filter.CopyFrom(common)
        getattr(flow_filter, f"{side}_pod").extend(pod_values)
        getattr(flow_filter, f"{side}_label").extend(labels)
        sides.append(flow_filter)
    _checked("pod" if pods else "namespace", flow_pb2.FlowFilter(source_pod=pod_values))
    _checked("label", flow_pb2.FlowFilter(source_label=labels))
    return sides


def _endpoint_row(prefix: str, ep: flow_pb2.Endpoint, ip: str, port: int) -> dict:
    return {f"{prefix}_namespace": ep.namespace, f"{prefix}_pod": ep.pod_name,
            f"{prefix}_workload": ep.workloads[0].name if ep.workloads else "",
            f"{prefix}_identity": ep.identity, f"{prefix}_ip": ip, f"{prefix}_port": port}


def _name(enum, number: int) -> str:
    """The enum value's name; the number itself for values newer than our protos."""
    try:
        return enum.Name(number)
    except ValueError:
        return str(number)


def flow_row(flow: flow_pb2.Flow) -> dict:
    """One flow as a flat row for a Grafana table."""
    l4 = l4_kind(flow)
    source_port, destination_port = l4_ports(flow) or (0, 0)
    record = flow.l7.WhichOneof("record") if flow.HasField("l7") else None
    row = {"time": rfc3339(flow.time.seconds * NS + flow.time.nanos), "uuid": flow.uuid, "node": flow.node_name,
           "verdict": _name(flow_pb2.Verdict, flow.verdict),
           "drop_reason": _name(flow_pb2.DropReason, flow.drop_reason_desc) if flow.drop_reason_desc else "",
           "direction": _name(flow_pb2.TrafficDirection, flow.traffic_direction),
           "is_reply": flow.is_reply.value if flow.HasField("is_reply") else None,
           "protocol": l4, "l7": record or "", "summary": flow.Summary}
    row.update(_endpoint_row("source", flow.source, flow.IP.source, source_port))
    row.update(_endpoint_row("destination", flow.destination, flow.IP.destination, destination_port))
    if record == "http":
        row.update(http_method=flow.l7.http.method, http_url=flow.l7.http.url, http_code=flow.l7.http.code,
                   latency_ms=flow.l7.latency_ns / 1e6)
    elif record == "dns":
        row.update(dns_query=flow.l7.dns.query, dns_rcode=flow.l7.dns.rcode, dns_ips=list(flow.l7.dns.ips))
    return row


def _ms(ns: float | None) -> float | None:
    return None if ns is None else ns / 1e6


def get_flows(store, params: Params):
    whitelist = flow_filters(params)
    as_hubble = params.choice("format", ("table", "hubble"), "table") == "hubble"
    flows = store.query_flows(whitelist=whitelist, since=params.time("since", None),
                              until=params.time("until", None), limit=params.int("limit", 100),
                              first=params.bool("first"))
    return [hubble_json.flow_dict(f) if as_hubble else flow_row(f) for f in flows]


def get_servicemap(store, params: Params):
    since, until = params.window()
    service_map = store.service_map(since, until, params.all("namespace") or None)
    nodes = [{"id": n.id, "title": n.workload, "subtitle": n.namespace or n.kind, "mainstat": n.flows_in,
              "secondarystat": n.flows_out, "detail__kind": n.kind, "detail__namespace": n.namespace}
             for n in service_map.nodes]
    edges = [{"id": f"{e.source}->{e.target}:{e.port}/{e.protocol}/{e.verdict}", "source": e.source,
              "target": e.target, "mainstat": e.flows, "secondarystat": e.error_rate,
              "color": "red" if e.verdict == "DROPPED" else "green", "detail__port": e.port,
              "detail__protocol": e.protocol, "detail__verdict": e.verdict, "detail__bytes": e.bytes,
              "detail__requests": e.requests, "detail__errors": e.errors, "detail__p95_ms": _ms(e.p95_ns),
              "detail__l7": ",".join(e.l7)} for e in service_map.edges]
    return {"nodes": nodes, "edges": edges}


def step(params: Params) -> int:
    """Aggregates are stored per minute: a step is a whole number of minutes, in seconds."""
    value = params.int("step", 60, 60, 86400)
    if value % 60:
        raise BadParameter("step", f"{value}: expected a multiple of 60 seconds")
    return value


def get_red(store, params: Params):
    since, until = params.window()
    points = store.http_red(since, until, step_s=step(params),
                            namespace=params.one("namespace"), workload=params.one("workload"))
    return [{"time": rfc3339(p.time_ns), "namespace": p.namespace, "workload": p.workload,
             "requests": p.requests, "rate": p.rate, "errors": p.errors, "client_errors": p.client_errors,
             "error_ratio": p.error_ratio, "p50_ms": _ms(p.p50_ns), "p95_ms": _ms(p.p95_ns),
             "p99_ms": _ms(p.p99_ns)} for p in points]


def get_dns(store, params: Params):
    since, until = params.window()
    summary = store.dns_summary(since, until, step_s=step(params),
                                namespace=params.one("namespace"), workload=params.one("workload"),
                                limit=params.int("limit", 10))
    series = [dict(dataclasses.asdict(p), time=rfc3339(p.time_ns), p50_ms=_ms(p.p50_ns), p95_ms=_ms(p.p95_ns),
                   p99_ms=_ms(p.p99_ns)) for p in summary.series]
    return {"series": series, "top_queries": [dataclasses.asdict(q) for q in summary.top_queries]}


def get_drops(store, params: Params):
    since, until = params.window()
    return [dataclasses.asdict(d) for d in store.drops_by_reason(
        since, until, params.all("namespace") or None, limit=params.int("limit", 20))]


def get_talkers(store, params: Params):
    since, until = params.window()
    return [dataclasses.asdict(t) for t in store.top_talkers(
        since, until, limit=params.int("limit", 10), by=params.choice("by", ("bytes", "flows"), "bytes"),
        namespaces=params.all("namespace") or None)]


def get_namespaces(store, params: Params):
    return [{"namespace": ns} for ns in store.namespaces(params.time("since", params.now_ns - DEFAULT_WINDOW_NS))]


def get_nodes(store, params: Params):
    return [dict(dataclasses.asdict(n), first=rfc3339(n.first_ns), last=rfc3339(n.last_ns))
            for n in store.nodes(params.time("since", params.now_ns - DEFAULT_WINDOW_NS))]


def get_status(store, params: Params):
    return store.status()


def get_index(store, params: Params):
    """What this API serves (also Infinity's health check target)."""
    return [{"path": path, "parameters": list(allowed)} for path, (_, allowed) in ROUTES.items()]


WINDOW = ("since", "until")
# path -> (handler, accepted parameters)
ROUTES: dict[str, tuple[Callable, tuple[str, ...]]] = {
    "/api/v1/flows": (get_flows, ("namespace", "pod", "label", "verdict", "protocol", "limit", "first",
                                  "format") + WINDOW),
    "/api/v1/servicemap": (get_servicemap, ("namespace",) + WINDOW),
    "/api/v1/red": (get_red, ("step", "namespace", "workload") + WINDOW),
    "/api/v1/dns": (get_dns, ("step", "namespace", "workload", "limit") + WINDOW),
    "/api/v1/drops": (get_drops, ("namespace", "limit") + WINDOW),
    "/api/v1/talkers": (get_talkers, ("namespace", "limit", "by") + WINDOW),
    "/api/v1/namespaces": (get_namespaces, ("since",)),
    "/api/v1/nodes": (get_nodes, ("since",)),
    "/api/v1/status": (get_status, ()),
    "/api/v1": (get_index, ()),
}


RETRY_AFTER_S = 5  # the DeferredStore tries to connect again every few seconds


def answer(store, path: str, query: str, now_ns: int) -> tuple[HTTPStatus, object]:
    """(status, JSON body) of one GET."""
    route = ROUTES.get(path.rstrip("/"))
    if route is None:
        return HTTPStatus.NOT_FOUND, {"error": f"no such endpoint {path!r}; expected one of {', '.join(ROUTES)}"}
    handler, allowed = route
    try:
        return HTTPStatus.OK, handler(store, Params(query, allowed, now_ns))
    except StorageUnavailable as err:  # not the caller's doing: a client or a proxy may retry
        return HTTPStatus.SERVICE_UNAVAILABLE, {"error": str(err)}
    except UserError as err:  # BadParameter, FilterError, StorageError: the caller's to fix
        return HTTPStatus.BAD_REQUEST, {"error": str(err)}
    except Exception:
        log.exception("http api: %s?%s", path, query)
        return HTTPStatus.INTERNAL_SERVER_ERROR, {"error": "internal error; see the server's log"}


def cors_headers(origin: str | None, allowed: frozenset[str]) -> list[tuple[str, str]]:
    """CORS for an allowlist: an allowed Origin gets exactly itself back, any other none at all (the
    browser then keeps the answer from the page). Never `*`: any page an operator opens could read flows."""
    headers = [("Vary", "Origin")] if allowed else []
    if origin and origin in allowed:
        headers.append(("Access-Control-Allow-Origin", origin))
    return headers


def create_wsgi_app(store, *, auth: Auth | None = None, cors_origins: tuple[str, ...] = (),
                    clock: Callable[[], int] = time.time_ns):
    """The API as a WSGI application. With `auth`, every GET needs its credentials in the Authorization
    header (a cookie or a query parameter is never enough: pages on other sites can make browsers send
    those)."""
    allowed = frozenset(cors_origins)

    def app(environ, start_response):
        cors = cors_headers(environ.get("HTTP_ORIGIN"), allowed)
        method = environ["REQUEST_METHOD"]
        if method == "OPTIONS":  # a CORS preflight carries no credentials
            if len(cors) == 2:
                cors += [("Access-Control-Allow-Methods", "GET"),
                         ("Access-Control-Allow-Headers", "Authorization"), ("Access-Control-Max-Age", "600")]
            start_response("204 No Content", cors)
            return []
        if method not in ("GET", "HEAD"):
            status, body, extra = HTTPStatus.METHOD_NOT_ALLOWED, {"error": f"{method}: expected GET"}, [
                ("Allow", "GET, HEAD, OPTIONS")]
        elif auth is not None and not auth.allows_header(environ.get("HTTP_AUTHORIZATION", "")):
            status, body, extra = HTTPStatus.UNAUTHORIZED, {"error": "authentication required"}, list(
                auth.challenge().items())
        else:
            status, extra = HTTPStatus.OK, []
            status, body = answer(store, environ.get("PATH_INFO", ""), environ.get("QUERY_STRING", ""), clock())
            if status == HTTPStatus.SERVICE_UNAVAILABLE:
                extra = [("Retry-After", str(RETRY_AFTER_S))]
        data = json.dumps(body).encode()
        start_response(f"{status.value} {status.phrase}", [
            ("Content-Type", "application/json"), ("Content-Length", str(len(data))),
            ("Cache-Control", "no-store"), *cors, *extra])
        return [] if method == "HEAD" else [data]

    return app


def check_settings(address: str, auth: Auth | None, cors_origins: tuple[str, ...],
                   flag: str = "--http-api-address") -> tuple[str, int]:
    """(host, port) of `address`; raises UserError for a non-loopback address without `auth` or an
    origin that is not scheme://host[:port]."""
    host, port = parse_address(address, flag)
    check_address(host, auth, False, flag=flag, expected="--http-api-auth-token-file, "
                  "$FLOWSCOPE_HTTP_API_TOKEN or --http-api-basic-auth-file")
    for origin in cors_origins:
        parts = urllib.parse.urlsplit(origin)
        if parts.scheme not in ("http", "https") or not parts.netloc or parts.path or origin == "*":
            raise UserError(f"--http-api-cors-origin {origin!r}: expected an origin such as "
                            "https://grafana.example.com (scheme://host[:port], no path, no '*')")
    return host, port


def create_http_api(store, address: str = "127.0.0.1:0", *, auth: Auth | None = None,
                    cors_origins: tuple[str, ...] = (), tls: TLSFiles | None = None, limits: Limits = Limits(),
                    flag: str = "--http-api-address", clock: Callable[[], int] = time.time_ns) -> HTTPServer:
    """Serves the API for `store` (a storage FlowStore) on `address` ("host:port"; port 0 = any free one)
    from a daemon thread. A non-loopback address needs `auth`. Returns the server (`.port`, `.stop()`)."""
    host, port = check_settings(address, auth, cors_origins, flag)
    return serve(create_wsgi_app(store, auth=auth, cors_origins=cors_origins, clock=clock), host, port,
                 name="flowscope-http-api", flag=flag, tls=tls, limits=limits)
