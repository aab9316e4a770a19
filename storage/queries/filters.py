"""FlowFilter lists -> a SQL condition over the flows table, with common.filters' semantics.

Validation and parsing are common.filters' own (same errors, same accepted values); only the
matching is re-expressed in SQL. A request matches ANY whitelist filter and NO blacklist filter; inside
one FlowFilter every set field must match; values of one field are alternatives. tests/storage checks
agreement with common.filters.build_request_filter on the same flows.
"""

from __future__ import annotations

import re
from typing import Iterable

from common.filters.base import FilterError, check_regex, enum_value, parse_ip_network
from common.filters.fqdn import fqdn_regex
from common.filters.http import parse_methods, parse_status
from common.filters.label import Requirement, parse_selector
from common.filters.node import node_regex
from common.filters.pod import parse_namespaced
from common.filters.port import parse_port
from common.protocols import L4_PROTOCOLS, L7_RECORDS, PROTOCOLS
from common.filters.tcp_flags import FLAG_NAMES
from proto.flow import flow_pb2
from storage.backend import quote
from storage.schema.columns import L4_PROTOCOL, L7_PROTO

TRUE, FALSE = "1", "0"
_URL_PATH = r"^(?:[A-Za-z][-A-Za-z0-9+.]*:)?(?://[^/?#]*)?([^?#]*).*$"


def _any(conditions: list[str]) -> str:
    return conditions[0] if len(conditions) == 1 else "(" + " OR ".join(conditions) + ")"


def _all(conditions: list[str]) -> str:
    return conditions[0] if len(conditions) == 1 else "(" + " AND ".join(conditions) + ")"


def _ip(field: str, values, column: str, or_default: bool) -> str:
    suffix = "OrDefault" if or_default else ""  # old servers return 0 for a bad address, new ones throw
    conds = []
    for value in values:
        net = parse_ip_network(field, value)
        if net.version == 4:
            lo, hi = int(net.network_address), int(net.broadcast_address)
            conds.append(f"(match({column}, '^[0-9]+[.][0-9]+[.][0-9]+[.][0-9]+$') AND "
                         f"IPv4StringToNum{suffix}({column}) BETWEEN {lo} AND {hi})")
        else:
            lo, hi = net.network_address.packed.hex(), net.broadcast_address.packed.hex()
            conds.append(f"(position({column}, ':') > 0 AND "
                         f"hex(IPv6StringToNum{suffix}({column})) BETWEEN '{lo.upper()}' AND '{hi.upper()}')")
    return _any(conds)


def _namespaced(field: str, values, ns_col: str, name_col: str) -> str:
    conds = []
    for value in values:
        namespace, prefix = parse_namespaced(field, value)
        cond = f"{ns_col} = {quote(namespace)}"
        if prefix:
            cond += f" AND startsWith({name_col}, {quote(prefix)})"
        conds.append(f"({cond})")
    return _any(conds)


def _label_regex(req: Requirement, values: Iterable[str] | None) -> str:
    source = f"^{re.escape(req.source)}:" if req.source else "^(?:[^:=]*:)?"
    key = re.escape(req.key)
    if values is None:
        return f"{source}{key}(?:=.*)?$"
    alts = "|".join("=?" if v == "" else "=" + re.escape(v) for v in sorted(values))
    return f"{source}{key}(?:{alts})$"


def _requirement(req: Requirement, labels: str) -> str:
    def exists(regex: str) -> str:
        return f"arrayExists(x -> match(x, {quote(regex)}), {labels})"

    if req.op == "exists":
        return exists(_label_regex(req, None))
    if req.op == "!exists":
        return f"NOT {exists(_label_regex(req, None))}"
    if req.op in ("=", "in"):
        return exists(_label_regex(req, req.values))
    if req.op in ("!=", "notin"):
        return f"NOT {exists(_label_regex(req, req.values))}"
    bound = int(next(iter(req.values)))
    regex = _label_regex(req, None).replace("(?:=.*)?$", "=[-+]?[0-9]+$")
    op = ">" if req.op == ">" else "<"
    return (f"arrayExists(x -> match(x, {quote(regex)}) AND "
            f"toInt64OrZero(substring(x, position(x, '=') + 1)) {op} {bound}, {labels})")


def _labels(field: str, selectors, column: str) -> str:
    conds = []
    for selector in selectors:
        reqs = parse_selector(field, selector)
        conds.append(_all([_requirement(r, column) for r in reqs]) if reqs else TRUE)
    return _any(conds)


def _fqdn(field: str, patterns, column: str) -> str:
    regexes = [fqdn_regex(field, p) for p in patterns]
    body = "|".join(f"(?:{r})" for r in regexes)
    return (f"arrayExists(x -> match(replaceRegexpOne(lower(x), '[.]+$', ''), "
            f"{quote('^(?:' + body + ')$')}), {column})")


def _workloads(field: str, wanted, column: str) -> str:
    conds = []
    for w in wanted:
        if not w.name and not w.kind:
            raise FilterError(field, "", "expected a workload name or kind")
        if w.name and w.kind:
            conds.append(f"has({column}, {quote(w.kind + '/' + w.name)})")
        elif w.name:
            conds.append(f"arrayExists(x -> substring(x, position(x, '/') + 1) = {quote(w.name)}, "
                         f"{column})")
        else:
            conds.append(f"arrayExists(x -> startsWith(x, {quote(w.kind + '/')}), {column})")
    return _any(conds)


def _in(column: str, values) -> str:
    return f"{column} IN ({', '.join(quote(v) for v in sorted(set(values)))})"


def _regex_search(field: str, patterns, column: str) -> str:
    return _any([f"match({column}, {quote(check_regex(field, p))})" for p in patterns])


def filter_sql(ff: flow_pb2.FlowFilter, or_default: bool = True) -> str:
    """One FlowFilter -> SQL (AND of its set fields); an empty filter is TRUE. `or_default`: the server
    has the *OrDefault address parsers (ClickHouse >= 22.3)."""
    c: list[str] = []
    if ff.uuid:
        c.append(_in("uuid", ff.uuid))
    for field, column in (("source_ip", "src_ip"), ("destination_ip", "dst_ip"),
                          ("source_ip_xlated", "src_ip_xlated")):
        if getattr(ff, field):
            c.append(_ip(field, getattr(ff, field), column, or_default))
    if ff.ip_version:
        for v in ff.ip_version:
            if v == flow_pb2.IP_NOT_USED:
                raise FilterError("ip_version", v, "expected IPv4 or IPv6")
        c.append(_in("ip_version", [enum_value("ip_version", flow_pb2.IPVersion, v)
                                    for v in ff.ip_version]))
    for field, ns, name in (("source_pod", "src_namespace", "src_pod"),
                            ("destination_pod", "dst_namespace", "dst_pod"),
                            ("source_service", "src_service_ns", "src_service"),
                            ("destination_service", "dst_service_ns", "dst_service")):
        if getattr(ff, field):
            c.append(_namespaced(field, getattr(ff, field), ns, name))
    if ff.source_label:
        c.append(_labels("source_label", ff.source_label, "src_labels"))
    if ff.destination_label:
        c.append(_labels("destination_label", ff.destination_label, "dst_labels"))
    for field, column in (("source_port", "src_port"), ("destination_port", "dst_port")):
        if getattr(ff, field):
            ports = [parse_port(field, v) for v in getattr(ff, field)]
            c.append(f"(protocol IN (6, 17, 132) AND {_in(column, ports)})")
    if ff.protocol:
        l4, l7 = set(), set()
        for value in ff.protocol:
            name = value.strip().lower()
            if name in L4_PROTOCOLS:
                l4.update(L4_PROTOCOL[p] for p in L4_PROTOCOLS[name])
            elif name in L7_RECORDS:
                l7.add(L7_PROTO[name])
            else:
                raise FilterError("protocol", value,
                                  f"unknown protocol, expected one of {', '.join(PROTOCOLS)}")
        c.append(_any(([_in("protocol", l4)] if l4 else []) + ([_in("l7_proto", l7)] if l7 else [])))
    if ff.verdict:
        c.append(_in("verdict", [enum_value("verdict", flow_pb2.Verdict, v) for v in ff.verdict]))
    if ff.drop_reason_desc:
        c.append(_in("drop_reason", [enum_value("drop_reason_desc", flow_pb2.DropReason, v)
                                     for v in ff.drop_reason_desc]))
    if ff.reply:
        # is_reply column: 0/1, 2 = unknown; Hubble reads an unknown on a DROPPED flow as false.
        c.append(_in("multiIf(is_reply != 2, is_reply, verdict = 2, 0, 2)",
                     [1 if r else 0 for r in ff.reply]))
    if ff.traffic_direction:
        c.append(_in("direction", [enum_value("traffic_direction", flow_pb2.TrafficDirection, d)
                                   for d in ff.traffic_direction]))
    if ff.event_type:
        c.append(_any([f"(event_type = {e.type}" + (f" AND event_subtype = {e.sub_type})"
                                                    if e.match_sub_type else ")")
                       for e in ff.event_type]))
    if ff.tcp_flags:
        masks = []
        for flags in ff.tcp_flags:
            mask = sum(1 << i for i, n in enumerate(FLAG_NAMES) if getattr(flags, n))
            if not mask:
                raise FilterError("tcp_flags", "", f"expected at least one of {', '.join(FLAG_NAMES)}")
            masks.append(f"bitAnd(tcp_flags, {mask}) = {mask}")
        c.append(f"(protocol = 6 AND {_any(masks)})")
    if ff.node_name:
        c.append(_any([f"match(node, {quote('^(?:' + node_regex('node_name', p) + ')$')})"
                       for p in ff.node_name]))
    if ff.source_fqdn:
        c.append(_fqdn("source_fqdn", ff.source_fqdn, "src_names"))
    if ff.destination_fqdn:
        c.append(_fqdn("destination_fqdn", ff.destination_fqdn, "dst_names"))
    if ff.source_identity:
        c.append(_in("src_identity", ff.source_identity))
    if ff.destination_identity:
        c.append(_in("dst_identity", ff.destination_identity))
    if ff.source_workload:
        c.append(_workloads("source_workload", ff.source_workload, "src_workloads"))
    if ff.destination_workload:
        c.append(_workloads("destination_workload", ff.destination_workload, "dst_workloads"))
    if ff.http_status_code:
        ranges = [parse_status(v) for v in ff.http_status_code]
        c.append(f"(l7_proto = 2 AND http_code != 0 AND "
                 f"{_any([f'http_code BETWEEN {lo} AND {hi}' for lo, hi in ranges])})")
    if ff.http_method:
        c.append(f"(l7_proto = 2 AND {_in('upper(http_method)', parse_methods(ff.http_method))})")
    if ff.http_path:
        path = f"replaceRegexpOne(http_url, {quote(_URL_PATH)}, '\\\\1')"
        c.append(f"(l7_proto = 2 AND {_regex_search('http_path', ff.http_path, path)})")
    if ff.http_url:
        c.append(f"(l7_proto = 2 AND {_regex_search('http_url', ff.http_url, 'http_url')})")
    if ff.dns_query:
        c.append(f"(l7_proto = 1 AND {_regex_search('dns_query', ff.dns_query, 'dns_query')})")
    if ff.interface:
        conds = []
        for i in ff.interface:
            if not i.index and not i.name:
                raise FilterError("interface", "", "expected an interface index or name")
            parts = ([f"interface_index = {i.index}"] if i.index else []) + \
                    ([f"interface_name = {quote(i.name)}"] if i.name else [])
            conds.append(_all(parts))
        c.append(_any(conds))
    if ff.trace_id or ff.http_header or ff.node_labels:
        # Stored flows keep no trace ids, HTTP headers or node labels: nothing stored can match.
        c.append(FALSE)
    return _all(c) if c else TRUE


def request_sql(whitelist: Iterable[flow_pb2.FlowFilter] = (),
                blacklist: Iterable[flow_pb2.FlowFilter] = (), or_default: bool = True) -> str:
    """Raises common.filters.FilterError (a UserError) naming the first bad field and value."""
    allow = [filter_sql(ff, or_default) for ff in whitelist]
    deny = [filter_sql(ff, or_default) for ff in blacklist]
    parts = []
    if allow:
        parts.append(_any(allow))
    if deny:
        parts.append(f"NOT {_any(deny)}")
    return _all(parts) if parts else TRUE
