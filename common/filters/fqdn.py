"""FQDN filters: source_fqdn/destination_fqdn against source_names/destination_names. Case-insensitive,
trailing dot ignored, "*" matches any run of name characters ("*.example.com")."""

from __future__ import annotations

import re

from common.filters.base import FilterError, FlowPredicate
from proto.flow import flow_pb2

_ALLOWED = re.compile(r"[-A-Za-z0-9_.*]+")


def compile_fqdn(field: str, pattern: str) -> re.Pattern[str]:
    name = pattern.strip().lower().rstrip(".")
    if not name or not _ALLOWED.fullmatch(name):
        raise FilterError(field, pattern, 'expected a DNS name, optionally with "*" wildcards')
    return re.compile("".join("[-a-z0-9_.]*" if c == "*" else re.escape(c) for c in name))


def _fqdn_matcher(field: str, patterns, get_names) -> FlowPredicate:
    compiled = [compile_fqdn(field, p) for p in patterns]

    def match(flow: flow_pb2.Flow) -> bool:
        names = [n.lower().rstrip(".") for n in get_names(flow)]
        return any(r.fullmatch(n) for r in compiled for n in names)

    return match


def build(ff: flow_pb2.FlowFilter) -> list[FlowPredicate]:
    preds = []
    if ff.source_fqdn:
        preds.append(_fqdn_matcher("source_fqdn", ff.source_fqdn, lambda f: f.source_names))
    if ff.destination_fqdn:
        preds.append(_fqdn_matcher("destination_fqdn", ff.destination_fqdn,
                                   lambda f: f.destination_names))
    return preds
