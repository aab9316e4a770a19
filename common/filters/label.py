"""Label filters: Kubernetes label selector syntax over Hubble's source-prefixed labels.

A flow endpoint carries labels such as "k8s:app=frontend" or "reserved:world". In a selector, a key
with a source prefix ("k8s:app=frontend") matches only labels of that source; a key without one
("app=frontend"), or one with the source "any", matches the key from any source. Supported requirements, comma-separated (all must
hold): `key`, `!key`, `key=v`, `key==v`, `key!=v`, `key in (a,b)`, `key notin (a,b)`, `key>n`, `key<n`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Callable

from common.filters.base import FilterError, FlowPredicate
from proto.flow import flow_pb2

_SOURCE = r"(?:(?P<source>[A-Za-z0-9_-]+):)?"
_KEY = r"(?P<key>[A-Za-z0-9](?:[-A-Za-z0-9_./]*[A-Za-z0-9])?)"
_VALUE = r"[A-Za-z0-9](?:[-A-Za-z0-9_.]*[A-Za-z0-9])?"
_EXISTS = re.compile(rf"\s*(?P<neg>!?)\s*{_SOURCE}{_KEY}\s*")
_SET = re.compile(rf"\s*{_SOURCE}{_KEY}\s+(?P<op>in|notin)\s*\((?P<values>[^()]*)\)\s*")
_CMP = re.compile(rf"\s*{_SOURCE}{_KEY}\s*(?P<op>==|=|!=|>|<)\s*(?P<value>{_VALUE})?\s*")
_VALUE_RE = re.compile(rf"{_VALUE}")

# A label set: key -> {source: value}.
LabelIndex = dict[str, dict[str, str]]


def index_labels(labels) -> LabelIndex:
    """"k8s:app=x" -> {"app": {"k8s": "x"}}; a label without a source gets source "unspec"."""
    index: LabelIndex = {}
    for label in labels:
        key, _, value = label.partition("=")
        source, sep, name = key.partition(":")
        if not sep:
            source, name = "unspec", key
        index.setdefault(name, {})[source] = value
    return index


@dataclass(frozen=True)
class Requirement:
    source: str | None  # None: any source
    key: str
    op: str  # exists, !exists, =, !=, in, notin, >, <
    values: frozenset[str] = frozenset()

    def __post_init__(self) -> None:
        if self.source == "any":
            object.__setattr__(self, "source", None)

    def matches(self, index: LabelIndex) -> bool:
        by_source = index.get(self.key, {})
        found = [v for s, v in by_source.items() if self.source is None or s == self.source]
        if self.op == "exists":
            return bool(found)
        if self.op == "!exists":
            return not found
        if self.op in ("=", "in"):
            return any(v in self.values for v in found)
        if self.op in ("!=", "notin"):
            # Kubernetes semantics: a missing key satisfies != and notin.
            return not any(v in self.values for v in found)
        bound = int(next(iter(self.values)))
        return any(_as_int(v) is not None and (_as_int(v) > bound if self.op == ">" else
                                              _as_int(v) < bound) for v in found)


def _as_int(text: str) -> int | None:
    try:
        return int(text)
    except ValueError:
        return None


def _split_requirements(selector: str) -> list[str]:
    # Commas inside "in (a,b)" do not separate requirements.
    parts, depth, current = [], 0, []
    for ch in selector:
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        if ch == "," and depth == 0:
            parts.append("".join(current))
            current = []
        else:
            current.append(ch)
    parts.append("".join(current))
    return parts


def parse_selector(field: str, selector: str) -> list[Requirement]:
    """Parses a selector; the empty selector matches everything, like in Kubernetes."""
    if not selector.strip():
        return []
    reqs = []
    for part in _split_requirements(selector):
        reqs.append(_parse_requirement(field, selector, part))
    return reqs


def _parse_requirement(field: str, selector: str, part: str) -> Requirement:
    if m := _EXISTS.fullmatch(part):
        return Requirement(m["source"], m["key"], "!exists" if m["neg"] else "exists")
    if m := _SET.fullmatch(part):
        values = [v.strip() for v in m["values"].split(",")]
        if not all(v == "" or _VALUE_RE.fullmatch(v) for v in values):
            raise FilterError(field, selector, f"invalid value in {part.strip()!r}")
        return Requirement(m["source"], m["key"], m["op"], frozenset(values))
    if m := _CMP.fullmatch(part):
        op, value = m["op"], m["value"] or ""
        if op in (">", "<"):
            if _as_int(value) is None:
                raise FilterError(field, selector, f"{op} needs an integer in {part.strip()!r}")
        return Requirement(m["source"], m["key"], "=" if op == "==" else op, frozenset([value]))
    raise FilterError(field, selector,
                      f"{part.strip()!r} is not a label requirement (key, !key, key=value, "
                      "key!=value, key in (a,b), key notin (a,b))")


def selector_matcher(field: str, selectors, get_labels: Callable[[flow_pb2.Flow], object]) -> FlowPredicate:
    parsed = [parse_selector(field, s) for s in selectors]

    def match(flow: flow_pb2.Flow) -> bool:
        index = index_labels(get_labels(flow))
        return any(all(r.matches(index) for r in reqs) for reqs in parsed)

    return match


def build(ff: flow_pb2.FlowFilter) -> list[FlowPredicate]:
    preds = []
    if ff.source_label:
        preds.append(selector_matcher("source_label", ff.source_label, lambda f: f.source.labels))
    if ff.destination_label:
        preds.append(selector_matcher("destination_label", ff.destination_label,
                                      lambda f: f.destination.labels))
    if ff.node_labels:
        # The labels of the node that observed the flow (Flow.node_labels, "key=value").
        preds.append(selector_matcher("node_labels", ff.node_labels, lambda f: f.node_labels))
    return preds
