"""YAML documents with the line of every field, so an error can point at it.

PyYAML composes nodes (which carry marks); we turn them into plain Python values ourselves and record
`field path -> line` on the way. Only the safe YAML subset is accepted: no tags that build objects.

Bounded, because policy files come from users and clusters: nesting deeper than MAX_DEPTH is refused
from the event stream before composing (libyaml composes recursively in C: 50,000 nested brackets
crash the process), and a document whose aliases expand to more than MAX_VALUES values (a
"billion laughs" file) or refer to themselves is refused while it is turned into Python values.
"""

from __future__ import annotations

import pathlib
from dataclasses import dataclass, field
from typing import Any

import yaml

from enforcer.policy.errors import PolicyError

YAML_SUFFIXES = (".yaml", ".yml", ".json")
MAX_DEPTH = 64          # a CiliumNetworkPolicy nests about 8 deep
MAX_VALUES = 100_000    # values of one document after alias expansion (a large policy has a few thousand)


@dataclass
class Document:
    file: str
    index: int                     # 0-based position in the file
    data: Any
    lines: dict[str, int] = field(default_factory=dict)   # field path -> 1-based line

    def error(self, path: str, reason: str) -> PolicyError:
        line = self.lines.get(path)
        probe = path
        while line is None and probe:
            probe = probe.rpartition(".")[0] if "." in probe else probe.rpartition("[")[0]
            line = self.lines.get(probe)
        return PolicyError(self.file, self.index, path, reason, line)


class _Budget:
    """Values left to build in one document, and the depth reached (aliases can loop or multiply)."""

    def __init__(self) -> None:
        self.values = MAX_VALUES

    def take(self, depth: int, path: str, doc: Document) -> None:
        self.values -= 1
        if self.values < 0:
            raise doc.error(path, f"expands to more than {MAX_VALUES} values (YAML aliases repeating "
                                  "an anchor?): refused")
        if depth > MAX_DEPTH:
            raise doc.error(path, f"nested deeper than {MAX_DEPTH} levels (an alias inside its own anchor?): "
                                  "refused")


def _plain(node: yaml.Node, path: str, lines: dict[str, int], doc: Document, budget: _Budget,
           depth: int = 0) -> Any:
    budget.take(depth, path, doc)
    lines.setdefault(path, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        out: dict[str, Any] = {}
        for key_node, value_node in node.value:
            if not isinstance(key_node, yaml.ScalarNode):
                raise doc.error(path, "mapping keys must be plain strings")
            key = str(_scalar(key_node))
            child = f"{path}.{key}" if path else key
            lines.setdefault(child, key_node.start_mark.line + 1)
            if key in out:
                raise doc.error(child, "duplicate key")
            out[key] = _plain(value_node, child, lines, doc, budget, depth + 1)
        return out
    if isinstance(node, yaml.SequenceNode):
        return [_plain(v, f"{path}[{i}]", lines, doc, budget, depth + 1) for i, v in enumerate(node.value)]
    return _scalar(node)


_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)   # libyaml when present: same nodes and marks, faster
_CONSTRUCTOR = yaml.constructor.SafeConstructor()


def _scalar(node: yaml.Node) -> Any:
    try:
        return _CONSTRUCTOR.construct_object(node, deep=True)
    finally:
        _CONSTRUCTOR.constructed_objects.clear()


def parse_documents(text: str, file: str) -> list[Document]:
    """Every non-empty document of a (multi-document) YAML text."""
    docs: list[Document] = []
    try:
        _check_depth(text, file)
        nodes = list(yaml.compose_all(text, Loader=_LOADER))
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        raise PolicyError(file, 0, "", f"not valid YAML: {getattr(err, 'problem', None) or err}",
                          mark.line + 1 if mark else None) from None
    for index, node in enumerate(nodes):
        if node is None:
            continue
        doc = Document(file, index, None)
        try:
            doc.data = _plain(node, "", doc.lines, doc, _Budget())
        except yaml.YAMLError as err:
            raise doc.error("", f"not valid YAML: {err}") from None
        if doc.data is not None:
            docs.append(doc)
    return docs


def _check_depth(text: str, file: str) -> None:
    """Refuse nesting past MAX_DEPTH from the (flat) event stream, before anything recursive runs."""
    depth, index = 0, 0
    for event in yaml.parse(text, Loader=_LOADER):
        if isinstance(event, (yaml.MappingStartEvent, yaml.SequenceStartEvent)):
            depth += 1
            if depth > MAX_DEPTH:
                raise PolicyError(file, index, "", f"nested deeper than {MAX_DEPTH} levels: refused",
                                  event.start_mark.line + 1)
        elif isinstance(event, (yaml.MappingEndEvent, yaml.SequenceEndEvent)):
            depth -= 1
        elif isinstance(event, yaml.DocumentEndEvent):
            index += 1


def policy_files(paths: list[str]) -> list[pathlib.Path]:
    """Files named directly, and the YAML files under directories (recursively, sorted)."""
    out: list[pathlib.Path] = []
    for raw in paths:
        p = pathlib.Path(raw)
        if p.is_dir():
            out.extend(sorted(f for f in p.rglob("*") if f.is_file() and f.suffix in YAML_SUFFIXES))
        elif p.is_file():
            out.append(p)
        else:
            raise PolicyError(raw, 0, "", "no such file or directory")
    return out
