"""Types shared by the filter modules.

Each field family module exposes `build(ff: flow_pb2.FlowFilter) -> list[FlowPredicate]`: one predicate
per field it understands that is set in the filter (values of one field are alternatives, so each
predicate is an OR over them). The builder ANDs the predicates of all modules. Validation happens once,
in `build`; the predicates themselves never raise on a well-formed Flow.
"""

from __future__ import annotations

import ipaddress
from typing import Callable, Iterable, Sequence

from common import patterns
from common.errors import UserError
from proto.flow import flow_pb2

FlowPredicate = Callable[[flow_pb2.Flow], bool]


class FilterError(UserError):
    """A FlowFilter value that cannot be used; names the field and the value."""

    def __init__(self, field: str, value: object, reason: str) -> None:
        self.field = field
        self.value = value
        self.reason = reason
        super().__init__(f"invalid {field} filter {value!r}: {reason}")


def check_regex(field: str, pattern: str) -> str:
    """`pattern` if it is a usable RE2 regex (common.patterns); FilterError naming field and pattern."""
    try:
        return patterns.check_regex(pattern)
    except patterns.PatternError as err:
        raise FilterError(field, err.pattern, err.reason) from None


def regex_matcher(field: str, regexes: Sequence[str], full: bool = False) -> patterns.Matcher:
    """One linear-time matcher for the alternatives of one field (searched, or whole text with `full`)."""
    for regex in regexes:
        check_regex(field, regex)
    try:
        return patterns.any_match(regexes, full=full)
    except patterns.PatternError as err:
        raise FilterError(field, err.pattern, err.reason) from None


def any_of(predicates: Iterable[FlowPredicate]) -> FlowPredicate:
    preds = tuple(predicates)
    if len(preds) == 1:
        return preds[0]
    return lambda flow: any(p(flow) for p in preds)


def parse_ip_network(field: str, value: str) -> ipaddress.IPv4Network | ipaddress.IPv6Network:
    """An IP ('10.0.0.1') or a CIDR ('10.0.0.0/8'); host bits in a CIDR are an error, as in Go's
    net.ParseCIDR users would otherwise silently get a different network."""
    try:
        if "/" in value:
            return ipaddress.ip_network(value, strict=True)
        return ipaddress.ip_network(ipaddress.ip_address(value))
    except ValueError as err:
        raise FilterError(field, value, f"expected an IP address or CIDR ({err})") from None


def enum_value(field: str, enum, value: object) -> int:
    """Accepts an enum number that the enum defines (proto3 lets unknown numbers through the wire)."""
    if not isinstance(value, int) or value not in enum.values():
        raise FilterError(field, value, f"expected one of {', '.join(enum.keys())}")
    return value
