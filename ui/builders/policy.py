"""Policy suggestions (enforcer.suggest.Suggestion) -> evidence rows, YAML, and a diff against what is
applied (enforcer.datapath.registry.AppliedPolicy documents)."""

from __future__ import annotations

import difflib

import yaml

EVIDENCE_PREFIX = "flowscope.io/evidence."


def evidence_rows(document: dict) -> list[dict]:
    """One row per rule: direction, index, evidence text (from the suggestion's annotations)."""
    annotations = document.get("metadata", {}).get("annotations", {})
    rows = []
    for key, text in annotations.items():
        if key.startswith(EVIDENCE_PREFIX):
            direction, _, index = key[len(EVIDENCE_PREFIX):].partition(".")
            rows.append({"rule": f"{direction}[{index}]", "evidence": text})
    return sorted(rows, key=lambda r: r["rule"])


def document_yaml(document: dict) -> str:
    return yaml.safe_dump(document, sort_keys=False, default_flow_style=False, width=120)


def _without_evidence(document: dict) -> dict:
    """The policy as enforced: evidence annotations change on every refresh and are not policy."""
    doc = dict(document)
    meta = dict(doc.get("metadata", {}))
    annotations = {k: v for k, v in meta.get("annotations", {}).items() if not k.startswith(EVIDENCE_PREFIX)}
    if annotations:
        meta["annotations"] = annotations
    else:
        meta.pop("annotations", None)
    doc["metadata"] = meta
    return doc


def diff_text(suggested: dict, applied: dict | None) -> str:
    """A unified diff from the applied policy to the suggestion ("" when they agree)."""
    new = document_yaml(_without_evidence(suggested)).splitlines(keepends=True)
    if applied is None:
        return "no policy of this name is applied; applying the suggestion adds:\n" + "".join(
            "+" + line for line in new)
    old = document_yaml(_without_evidence(applied)).splitlines(keepends=True)
    return "".join(difflib.unified_diff(old, new, "applied", "suggested"))
