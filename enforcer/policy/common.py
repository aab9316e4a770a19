"""Parsers shared by the Kubernetes and Cilium policy kinds: metadata, selectors, CIDRs, ports."""

from __future__ import annotations

import ipaddress
import re

from enforcer.policy.selectors import OPERATORS, LabelSelector, Requirement
from enforcer.policy.walk import Field

# RFC 1123 label / DNS subdomain (names and namespaces), and Kubernetes label keys and values.
_DNS_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")
_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9.]*[a-z0-9])?")
_LABEL_NAME = re.compile(r"([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]")
_LABEL_VALUE = re.compile(r"(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?")
_PORT_NAME = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")


def metadata(field: Field, namespaced: bool) -> tuple[str, str, tuple[tuple[str, str], ...]]:
    meta = field.mapping(("name", "namespace", "labels", "annotations", "uid", "resourceVersion",
                          "generation", "creationTimestamp", "managedFields"), required=("name",))
    name = meta["name"].string()
    if len(name) > 253 or not _SUBDOMAIN.fullmatch(name):
        raise meta["name"].fail(f"{name!r} is not a valid name (lowercase letters, digits, '-' and '.')")
    namespace = ""
    if "namespace" in meta:
        if not namespaced:
            raise meta["namespace"].fail("a cluster-wide policy has no namespace")
        namespace = meta["namespace"].string()
        if len(namespace) > 63 or not _DNS_LABEL.fullmatch(namespace):
            raise meta["namespace"].fail(f"{namespace!r} is not a valid namespace name")
    elif namespaced:
        namespace = "default"
    labels = tuple(sorted(meta["labels"].string_map().items())) if "labels" in meta else ()
    if "annotations" in meta:
        meta["annotations"].string_map()
    return name, namespace, labels


def label_key(field: Field, key: str, strip_source: bool) -> str:
    if strip_source:
        for prefix in ("k8s:", "any:"):
            if key.startswith(prefix):
                key = key[len(prefix):]
                break
    prefix, _, name = key.rpartition("/")
    if not name or len(name) > 63 or not _LABEL_NAME.fullmatch(name) or (
            prefix and (len(prefix) > 253 or not _SUBDOMAIN.fullmatch(prefix))):
        raise field.fail(f"{key!r} is not a valid label key")
    return key


def label_value(field: Field, value: str) -> str:
    if len(value) > 63 or not _LABEL_VALUE.fullmatch(value):
        raise field.fail(f"{value!r} is not a valid label value")
    return value


def selector(field: Field, cilium: bool = False) -> LabelSelector:
    """A LabelSelector; in Cilium selectors label keys may carry a source prefix (k8s:, any:)."""
    parts = field.mapping(("matchLabels", "matchExpressions"))
    match_labels = []
    if "matchLabels" in parts:
        for key, value in parts["matchLabels"].string_map().items():
            key_field = parts["matchLabels"].child(key, value)
            match_labels.append((label_key(key_field, key, cilium), label_value(key_field, value)))
    expressions = []
    for expr in parts.get("matchExpressions", field.child("matchExpressions", None)).items():
        e = expr.mapping(("key", "operator", "values"), required=("key", "operator"))
        key = label_key(e["key"], e["key"].string(), cilium)
        operator = e["operator"].choice(OPERATORS)
        values = tuple(label_value(v, v.string(allow_empty=True)) for v in
                       e.get("values", expr.child("values", None)).items())
        if operator in ("In", "NotIn") and not values:
            raise expr.fail(f"operator {operator} needs a non-empty values list")
        if operator in ("Exists", "DoesNotExist") and values:
            raise e["values"].fail(f"operator {operator} takes no values")
        expressions.append(Requirement(key, operator, values))
    return LabelSelector(tuple(sorted(match_labels)), tuple(expressions))


def cidr(field: Field) -> str:
    text = field.string()
    try:
        return str(ipaddress.ip_network(text, strict=False))
    except ValueError:
        raise field.fail(f"{text!r} is not a CIDR (like 10.0.0.0/8 or fd00::/64)") from None


def cidr_with_excepts(field: Field, cidr_key: str, except_key: str) -> tuple[str, tuple[str, ...]]:
    parts = field.mapping((cidr_key, except_key), required=(cidr_key,))
    block = cidr(parts[cidr_key])
    net = ipaddress.ip_network(block)
    excepts = []
    for item in parts.get(except_key, field.child(except_key, None)).items():
        e = ipaddress.ip_network(cidr(item))
        if e.version != net.version or not e.subnet_of(net):
            raise item.fail(f"{e} is not inside {block}")
        excepts.append(str(e))
    return block, tuple(excepts)


def port_name(field: Field, name: str) -> str:
    if len(name) > 15 or not _PORT_NAME.fullmatch(name) or not re.search(r"[a-z]", name):
        raise field.fail(f"{name!r} is neither a port number (1-65535) nor a valid port name")
    return name
