"""Policies from files and directories of (multi-document) YAML: NetworkPolicy, CiliumNetworkPolicy,
CiliumClusterwideNetworkPolicy, and `kind: List` of them (kubectl's output)."""

from __future__ import annotations

from enforcer.policy import cilium, k8s
from enforcer.policy.errors import PolicyError
from enforcer.policy.model import Policy
from enforcer.policy.source import Document, parse_documents, policy_files
from enforcer.policy.walk import Field

API_VERSIONS = {k8s.KIND: k8s.API_VERSION, **{k: cilium.API_VERSION for k in cilium.KINDS}}


def parse_text(text: str, file: str = "<text>") -> list[Policy]:
    """Every policy in a YAML text. Raises PolicyError for the first invalid one."""
    policies: list[Policy] = []
    seen: dict[str, Policy] = {}
    for doc in parse_documents(text, file):
        policies.extend(_unique(doc, _document(Field(doc, doc.data)), seen))
    return policies


def load_policies(paths: list[str]) -> list[Policy]:
    """Every policy in the given files and directories (YAML files under directories, recursively)."""
    policies: list[Policy] = []
    seen: dict[str, Policy] = {}
    for path in policy_files(paths):
        try:
            text = path.read_text()
        except (OSError, UnicodeDecodeError) as err:
            raise PolicyError(str(path), 0, "", f"cannot read: {err}") from None
        for doc in parse_documents(text, str(path)):
            policies.extend(_unique(doc, _document(Field(doc, doc.data)), seen))
    return policies


def _document(field: Field) -> list[Policy]:
    if not isinstance(field.value, dict):
        raise field.fail("expected a policy (a mapping with apiVersion and kind)")
    kind_field = field.child("kind", field.value.get("kind"))
    if kind_field.value is None:
        raise kind_field.fail("required field is missing")
    kind = kind_field.choice(tuple(API_VERSIONS) + ("List",))
    if kind == "List":
        parts = field.mapping(("apiVersion", "kind", "items", "metadata"))
        items = parts["items"].items() if "items" in parts else []
        return [p for item in items for p in _document(item)]
    api_field = field.child("apiVersion", field.value.get("apiVersion"))
    if api_field.value is None:
        raise api_field.fail("required field is missing")
    if api_field.value != API_VERSIONS[kind]:
        raise api_field.fail(f"expected {API_VERSIONS[kind]} for kind {kind}, got {api_field.value!r}")
    if kind == k8s.KIND:
        return [k8s.parse(field)]
    return cilium.parse(field, kind)


def _unique(doc: Document, policies: list[Policy], seen: dict[str, Policy]) -> list[Policy]:
    """Two documents defining the same policy would make one silently replace the other."""
    for p in policies:
        first = seen.setdefault(p.key, p)
        if (first.file, first.document) != (p.file, p.document):
            raise doc.error("metadata.name", f"{p.kind} {p.namespace}/{p.name} is already defined in "
                                             f"{first.file} (document {first.document})")
    return policies
