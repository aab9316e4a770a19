"""Node name filter: glob patterns ("k8s*", "cluster-a/worker-?"). `*` and `?` do not cross "/";
a pattern without "/" matches the node part of a "cluster/node" name too."""

from __future__ import annotations

import string

from common import patterns
from common.filters.base import FilterError, FlowPredicate, regex_matcher
from proto.flow import flow_pb2

_GLOB_CHARS = frozenset(string.ascii_letters + string.digits + "-_.*?")


def node_regex(field: str, pattern: str) -> str:
    """The RE2 regex (to match whole node names) of a node name glob."""
    parts = pattern.split("/")
    if len(parts) > 2 or not all(part and set(part) <= _GLOB_CHARS for part in parts):
        raise FilterError(field, pattern,
                          'expected a node name glob (letters, digits, "-_.", "*", "?", one "/")')
    body = patterns.glob_regex(pattern, star="[^/]*", question="[^/]")
    return body if "/" in pattern else "(?:[^/]*/)?" + body


def build(ff: flow_pb2.FlowFilter) -> list[FlowPredicate]:
    if not ff.node_name:
        return []
    match = regex_matcher("node_name", [node_regex("node_name", p) for p in ff.node_name], full=True)
    return [lambda f: match(f.node_name)]
