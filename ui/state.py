"""The view state of the service-map page: what the URL query string carries, so a view can be shared.

`ViewState` round-trips through the query string (`from_query` / `to_query`), resolves its time window
against a clock (`window_ns`) and turns its filters into Hubble FlowFilters with `hubble observe`
semantics (`flow_filters`): --namespace/--pod/--label match either side of a flow, so one filter holds the
source-side fields and one the destination-side fields, each with the common fields (verdict, protocol,
HTTP status).
"""

from __future__ import annotations

import dataclasses
import urllib.parse

from common.errors import UserError
from common.timeparse import TimeError, parse_time_ns
from proto.flow import flow_pb2

NS = 1_000_000_000
WINDOWS = {"live": 300, "5m": 300, "1h": 3600, "24h": 86400}  # seconds back from now; custom: since/until
VERDICTS = ("FORWARDED", "DROPPED", "AUDIT", "ERROR")
PROTOCOLS = ("tcp", "udp", "icmp", "http", "dns", "kafka")
_LIST_FIELDS = ("namespaces", "verdicts", "protocols")
_QUERY_NAMES = {"window": "window", "since": "since", "until": "until", "namespaces": "ns", "pod": "pod",
                "label": "label", "verdicts": "verdict", "protocols": "protocol",
                "http_status": "status", "changes": "changes", "selection": "sel"}


class ViewError(UserError):
    """A filter or window the user typed is not valid; the message names it and what is expected."""


@dataclasses.dataclass(frozen=True)
class ViewState:
    window: str = "live"
    since: str = ""  # custom window: RFC 3339 or a duration ago ("2h")
    until: str = ""
    namespaces: tuple[str, ...] = ()
    pod: str = ""  # "namespace/name-prefix" or "name-prefix"
    label: str = ""  # a label selector, e.g. "app=frontend"
    verdicts: tuple[str, ...] = ()
    protocols: tuple[str, ...] = ()
    http_status: str = ""  # e.g. "500", "5+", "404,503"
    changes: bool = False
    selection: str = ""  # "node:<id>" or "edge:<source>|<target>|<port>|<protocol>|<verdict>"

    @property
    def live(self) -> bool:
        return self.window == "live"


def from_query(search: str) -> ViewState:
    """Parses `?window=1h&ns=shop,data...`; unknown parameters are ignored, bad values raise ViewError."""
    params = urllib.parse.parse_qs(search.lstrip("?"), keep_blank_values=False)
    values: dict = {}
    for field, name in _QUERY_NAMES.items():
        if name not in params:
            continue
        raw = params[name][-1]
        if field in _LIST_FIELDS:
            values[field] = tuple(v for v in raw.split(",") if v)
        elif field == "changes":
            values[field] = raw in ("1", "true", "yes")
        else:
            values[field] = raw
    return validate(ViewState(**values))


def to_query(state: ViewState) -> str:
    """The query string (with '?', or '' for the default view) that `from_query` reads back."""
    default = ViewState()
    params = {}
    for field, name in _QUERY_NAMES.items():
        value = getattr(state, field)
        if value == getattr(default, field):
            continue
        if field in _LIST_FIELDS:
            value = ",".join(value)
        elif field == "changes":
            value = "1"
        params[name] = value
    return "?" + urllib.parse.urlencode(params, safe=",/:|") if params else ""


def from_dict(data: dict | None) -> ViewState:
    """From the dcc.Store copy (lists instead of tuples)."""
    if not data:
        return ViewState()
    return ViewState(**{k: tuple(v) if k in _LIST_FIELDS else v for k, v in data.items()})


def to_dict(state: ViewState) -> dict:
    return dataclasses.asdict(state)


def validate(state: ViewState) -> ViewState:
    if state.window not in WINDOWS and state.window != "custom":
        raise ViewError(f"window {state.window!r}: expected one of {', '.join(WINDOWS)}, custom")
    for v in state.verdicts:
        if v not in VERDICTS:
            raise ViewError(f"verdict {v!r}: expected one of {', '.join(VERDICTS)}")
    for p in state.protocols:
        if p not in PROTOCOLS:
            raise ViewError(f"protocol {p!r}: expected one of {', '.join(PROTOCOLS)}")
    if state.window == "custom":
        window_ns(state, 0)
    flow_filters(state)
    return state


def window_ns(state: ViewState, now_ns: int) -> tuple[int, int]:
    """[since, until] of the view in ns. Custom windows accept what `flowscope observe --since` does."""
    if state.window != "custom":
        return now_ns - WINDOWS[state.window] * NS, now_ns
    if not state.since:
        raise ViewError("custom window: 'from' is empty; expected an RFC 3339 time or a duration ago (2h)")
    try:
        since = parse_time_ns("from", state.since, now_ns)
        until = parse_time_ns("to", state.until, now_ns) if state.until else now_ns
    except TimeError as err:
        raise ViewError(f"custom window: {err}") from None
    if since >= until:
        raise ViewError(f"custom window: from {state.since!r} is not before to {state.until or 'now'!r}")
    return since, until


def _side_values(state: ViewState) -> list[str]:
    """source_pod/destination_pod values: namespaces, or pod prefixes (in the chosen namespaces)."""
    if state.pod:
        if "/" in state.pod:
            return [state.pod]
        # like `hubble observe --pod name`: in the chosen namespaces, else in "default"
        return [f"{ns}/{state.pod}" for ns in state.namespaces or ("default",)]
    return [f"{ns}/" for ns in state.namespaces]


def flow_filters(state: ViewState) -> list[flow_pb2.FlowFilter]:
    """The whitelist for the store's flow queries (empty = all flows). Raises ViewError on bad input."""
    from common.filters import FilterError, build_request_filter

    common = flow_pb2.FlowFilter()
    common.verdict.extend(flow_pb2.Verdict.Value(v) for v in state.verdicts)
    common.protocol.extend(state.protocols)
    if state.http_status:
        common.http_status_code.extend(s.strip() for s in state.http_status.split(",") if s.strip())
    pods = _side_values(state)
    if not pods and not state.label:
        filters = [common] if common.ByteSize() else []
    else:
        src, dst = flow_pb2.FlowFilter(), flow_pb2.FlowFilter()
        src.CopyFrom(common)
        dst.CopyFrom(common)
        src.source_pod.extend(pods)
        dst.destination_pod.extend(pods)
        if state.label:
            src.source_label.append(state.label)
            dst.destination_label.append(state.label)
        filters = [src, dst]
    try:
        build_request_filter(filters, [])
    except FilterError as err:
        raise ViewError(str(err)) from None
    return filters


_SELECTION_FIELDS = {"node": ("id",), "edge": ("source", "target", "port", "protocol", "verdict"),
                     "namespaces": ("source", "target")}


def parse_selection(selection: str) -> dict | None:
    """"node:<id>" -> {"kind": "node", "id": ...}; "edge:a|b|port|proto|verdict" -> {"kind": "edge", ...};
    "namespaces:a|b" (an aggregated edge of a collapsed map). None when malformed."""
    kind, _, rest = selection.partition(":")
    fields = _SELECTION_FIELDS.get(kind)
    parts = [rest] if kind == "node" else rest.split("|")
    if not fields or not rest or len(parts) != len(fields) or (
            kind == "edge" and not (parts[2].isascii() and parts[2].isdigit())):
        return None
    out = {"kind": kind, **dict(zip(fields, parts))}
    if kind == "edge":
        out["port"] = int(out["port"])
    return out


def format_selection(selection: dict | None) -> str:
    """The inverse of parse_selection ("" for no selection)."""
    if not selection:
        return ""
    return f"{selection['kind']}:" + "|".join(str(selection[f]) for f in _SELECTION_FIELDS[selection["kind"]])
