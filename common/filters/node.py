"""Node name filter: glob patterns ("k8s*", "cluster-a/worker-?"). `*` and `?` do not cross "/";
a pattern without "/" matches the node part of a "cluster/node" name too."""

from __future__ import annotations

import re

from common.filters.base import FilterError, FlowPredicate
from proto.flow import flow_pb2

_ALLOWED = re.compile(r"[-A-Za-z0-9_.*?]+(/[-A-Za-z0-9_.*?]+)?")


def compile_glob(field: str, pattern: str) -> re.Pattern[str]:
    if not _ALLOWED.fullmatch(pattern):
        raise FilterError(field, pattern,
                          'expected a node name glob (letters, digits, "-_.", "*", "?", one "/")')
    body = "".join("[^/]*" if c == "*" else "[^/]" if c == "?" else re.escape(c) for c in pattern)
    if "/" not in pattern:
        body = "(?:[^/]*/)?" + body
    return re.compile(body)


def build(ff: flow_pb2.FlowFilter) -> list[FlowPredicate]:
    if not ff.node_name:
        return []
    globs = [compile_glob("node_name", p) for p in ff.node_name]
    return [lambda f: any(g.fullmatch(f.node_name) for g in globs)]
