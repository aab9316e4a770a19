"""Turns FlowFilters into predicates: inside one FlowFilter every set field must match; a request
matches ANY whitelist filter (or there is none) and NO blacklist filter."""

from __future__ import annotations

from typing import Iterable

from common.filters import (direction, dns, endpoint, event_type, fqdn, http, identifiers, ip, label,
                               node, pod, port, protocol, tcp_flags, verdict)
from common.filters.base import FlowPredicate, any_of
from proto.flow import flow_pb2

FIELD_BUILDERS = (ip.build, pod.build, label.build, port.build, protocol.build, verdict.build,
                  direction.build, event_type.build, tcp_flags.build, node.build, fqdn.build,
                  endpoint.build, http.build, dns.build, identifiers.build)


def build_filter(ff: flow_pb2.FlowFilter) -> FlowPredicate:
    """One FlowFilter -> predicate (AND of its fields). An empty FlowFilter matches every flow."""
    preds = tuple(p for build in FIELD_BUILDERS for p in build(ff))
    if not preds:
        return lambda flow: True
    if len(preds) == 1:
        return preds[0]
    return lambda flow: all(p(flow) for p in preds)


def build_request_filter(whitelist: Iterable[flow_pb2.FlowFilter] = (),
                         blacklist: Iterable[flow_pb2.FlowFilter] = ()) -> FlowPredicate:
    """Raises FilterError (a UserError) naming the field and value of the first bad filter."""
    allow = [build_filter(ff) for ff in whitelist]
    deny = [build_filter(ff) for ff in blacklist]
    allowed = any_of(allow) if allow else None
    denied = any_of(deny) if deny else None
    if allowed is None and denied is None:
        return lambda flow: True
    if denied is None:
        return allowed
    if allowed is None:
        return lambda flow: not denied(flow)
    return lambda flow: allowed(flow) and not denied(flow)
