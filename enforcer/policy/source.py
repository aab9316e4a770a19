"""YAML documents with the line of every field, so an error can point at it.

PyYAML composes nodes (which carry marks); we turn them into plain Python values ourselves and record
`field path -> line` on the way. Only the safe YAML subset is accepted: no tags that build objects.
"""

from __future__ import annotations

import pathlib
from dataclasses import dataclass, field
from typing import Any

import yaml

from enforcer.policy.errors import PolicyError

YAML_SUFFIXES = (".yaml", ".yml", ".json")


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


def _plain(node: yaml.Node, path: str, lines: dict[str, int], doc: Document) -> Any:
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
            out[key] = _plain(value_node, child, lines, doc)
        return out
    if isinstance(node, yaml.SequenceNode):
        return [_plain(v, f"{path}[{i}]", lines, doc) for i, v in enumerate(node.value)]
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
            doc.data = _plain(node, "", doc.lines, doc)
        except yaml.YAMLError as err:
            raise doc.error("", f"not valid YAML: {err}") from None
        if doc.data is not None:
            docs.append(doc)
    return docs


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
