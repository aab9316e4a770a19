"""FQDN filters: source_fqdn/destination_fqdn against source_names/destination_names. Case-insensitive,
trailing dot ignored, "*" matches any run of name characters ("*.example.com")."""

from __future__ import annotations

from common import patterns
from common.filters.base import FilterError, FlowPredicate, regex_matcher
from proto.flow import flow_pb2

_NAME_CHARS = frozenset("-abcdefghijklmnopqrstuvwxyz0123456789_.*")


def fqdn_regex(field: str, pattern: str) -> str:
    """The RE2 regex (to match whole, lower-cased names without the trailing dot) of an FQDN pattern."""
    name = pattern.strip().lower().rstrip(".")
    if not name or not set(name) <= _NAME_CHARS:
        raise FilterError(field, pattern, 'expected a DNS name, optionally with "*" wildcards')
    return patterns.glob_regex(name, star="[-a-z0-9_.]*")


def _fqdn_matcher(field: str, values, get_names) -> FlowPredicate:
    match = regex_matcher(field, [fqdn_regex(field, p) for p in values], full=True)
    return lambda flow: any(match(n.lower().rstrip(".")) for n in get_names(flow))


def build(ff: flow_pb2.FlowFilter) -> list[FlowPredicate]:
    preds = []
    if ff.source_fqdn:
        preds.append(_fqdn_matcher("source_fqdn", ff.source_fqdn, lambda f: f.source_names))
    if ff.destination_fqdn:
        preds.append(_fqdn_matcher("destination_fqdn", ff.destination_fqdn,
                                   lambda f: f.destination_names))
    return preds
