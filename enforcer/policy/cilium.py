"""The common CiliumNetworkPolicy (and CiliumClusterwideNetworkPolicy) subset into the policy model.

Semantics kept from Cilium: endpoint selectors of a namespaced policy apply inside its namespace unless
they name io.kubernetes.pod.namespace; a rule with neither peers nor ports (`- {}`) allows nothing but
still turns on default deny; toPorts without peers allows those ports from/to any peer; any
ingress/ingressDeny (egress/egressDeny) section puts the selected endpoints in default deny for that
direction; deny rules win over allow rules; L7 rules (http, dns) are visibility/audit here (no proxy).
"""

from __future__ import annotations

import re

from common import patterns
from enforcer.policy.common import cidr, cidr_with_excepts, metadata, port_name, selector
from enforcer.policy.model import (EGRESS, ENTITIES, INGRESS, NAMESPACE_LABEL, CidrPeer, DnsRule, EndpointSelector,
                                   EntityPeer, FqdnPeer, HttpRule, Peer, Policy, PortSpec, Rule)
from enforcer.policy.walk import Field

KINDS = ("CiliumNetworkPolicy", "CiliumClusterwideNetworkPolicy")
API_VERSION = "cilium.io/v2"

_PEER_KEYS = {
    INGRESS: ("fromEndpoints", "fromEntities", "fromCIDR", "fromCIDRSet", "fromRequires"),
    EGRESS: ("toEndpoints", "toEntities", "toCIDR", "toCIDRSet", "toFQDNs", "toRequires", "toServices"),
}
_SPEC_KEYS = ("endpointSelector", "nodeSelector", "ingress", "egress", "ingressDeny", "egressDeny",
              "description", "labels", "enableDefaultDeny")


def parse(doc: Field, kind: str) -> list[Policy]:
    """One Policy per rule in `spec` and in `specs` (Cilium allows both)."""
    top = doc.mapping(("apiVersion", "kind", "metadata", "spec", "specs", "status"), required=("metadata",))
    namespaced = kind == "CiliumNetworkPolicy"
    name, namespace, labels = metadata(top["metadata"], namespaced=namespaced)
    specs = ([top["spec"]] if "spec" in top else []) + (top["specs"].items() if "specs" in top else [])
    if not specs:
        raise doc.fail("a Cilium policy needs spec or specs")
    return [_spec(s, kind, name, namespace if namespaced else None, labels, doc) for s in specs]


def _spec(field: Field, kind: str, name: str, namespace: str | None, labels, doc: Field) -> Policy:
    spec = field.mapping(_SPEC_KEYS)
    if "endpointSelector" not in spec:
        raise field.child("endpointSelector", None).fail(
            "required field is missing (nodeSelector policies are not supported)")
    if "nodeSelector" in spec:
        raise spec["nodeSelector"].fail("host policies (nodeSelector) are not supported")
    subject = _endpoints(spec["endpointSelector"], namespace)
    if "description" in spec:
        spec["description"].string(allow_empty=True)
    if "enableDefaultDeny" in spec:
        spec["enableDefaultDeny"].mapping(("ingress", "egress"))
    directions = {}
    for direction in (INGRESS, EGRESS):
        allow_key, deny_key = direction, direction + "Deny"
        if allow_key not in spec and deny_key not in spec:
            directions[direction] = None
            continue
        rules = [_rule(r, direction, namespace, deny=False) for r in spec[allow_key].items()] \
            if allow_key in spec else []
        rules += [_rule(r, direction, namespace, deny=True) for r in spec[deny_key].items()] \
            if deny_key in spec else []
        directions[direction] = tuple(rules)
    return Policy(kind, name, namespace or "", subject, directions[INGRESS], directions[EGRESS], labels,
                  doc.doc.file, doc.doc.index, doc.value)


def _endpoints(field: Field, namespace: str | None) -> EndpointSelector:
    sel = selector(field, cilium=True)
    names_namespace = any(r.key == NAMESPACE_LABEL for r in sel.requirements)
    return EndpointSelector(sel, None if names_namespace else namespace, cilium=True)


def _rule(field: Field, direction: str, namespace: str | None, deny: bool) -> Rule:
    peer_keys = _PEER_KEYS[direction]
    parts = field.mapping(peer_keys + ("toPorts", "icmps", "authentication"))
    for unsupported in ("fromRequires", "toRequires", "toServices", "icmps", "authentication"):
        if unsupported in parts:
            raise parts[unsupported].fail("not supported by flowscope")
    peers: list[Peer] = []
    given = False
    for key in peer_keys:
        if key not in parts:
            continue
        given = True
        for item in parts[key].items():
            peers.extend(_peer(key, item, namespace))
    ports: list[PortSpec] = []
    http: list[HttpRule] = []
    dns: list[DnsRule] = []
    for tp in parts["toPorts"].items() if "toPorts" in parts else []:
        p, h, d = _to_ports(tp, deny)
        ports.extend(p)
        http.extend(h)
        dns.extend(d)
    if "toPorts" in parts and not ports:
        raise parts["toPorts"].fail("toPorts needs at least one port")
    if not given and not ports:
        # `- {}`: selects the endpoint for this direction and allows nothing.
        return Rule(field.path, (), (), deny=deny)
    return Rule(field.path, tuple(peers) if given else None, tuple(ports), tuple(http), tuple(dns), deny)


def _peer(key: str, item: Field, namespace: str | None) -> list[Peer]:
    if key in ("fromEndpoints", "toEndpoints"):
        return [_endpoints(item, namespace)]
    if key in ("fromEntities", "toEntities"):
        return [EntityPeer(item.choice(ENTITIES))]
    if key in ("fromCIDR", "toCIDR"):
        return [CidrPeer(cidr(item))]
    if key in ("fromCIDRSet", "toCIDRSet"):
        block, excepts = cidr_with_excepts(item, "cidr", "except")
        return [CidrPeer(block, excepts)]
    return [_fqdn(item)]


def _fqdn(item: Field) -> FqdnPeer:
    name, pattern = _name_match(item)
    return FqdnPeer(name, pattern)


def _name_match(item: Field) -> tuple[str | None, str | None]:
    """(matchName, matchPattern): exactly one is given (toFQDNs and rules.dns share the shape)."""
    parts = item.mapping(("matchName", "matchPattern"))
    if len(parts) != 1:
        raise item.fail("give exactly one of matchName or matchPattern")
    if "matchName" in parts:
        return _dns_name(parts["matchName"], pattern=False), None
    return None, _dns_name(parts["matchPattern"], pattern=True)


def _dns_name(field: Field, pattern: bool) -> str:
    text = field.string()
    allowed = r"[-a-zA-Z0-9_.*]+" if pattern else r"[-a-zA-Z0-9_.]+"
    if len(text) > 255 or not re.fullmatch(allowed, text):
        raise field.fail(f"{text!r} is not a valid DNS {'pattern' if pattern else 'name'}")
    return text


def _to_ports(field: Field, deny: bool) -> tuple[list[PortSpec], list[HttpRule], list[DnsRule]]:
    parts = field.mapping(("ports", "rules", "originatingTLS", "terminatingTLS", "serverNames", "listener"))
    for unsupported in ("originatingTLS", "terminatingTLS", "serverNames", "listener"):
        if unsupported in parts:
            raise parts[unsupported].fail("not supported by flowscope")
    ports = [_port(p) for p in parts["ports"].items()] if "ports" in parts else []
    http: list[HttpRule] = []
    dns: list[DnsRule] = []
    if "rules" in parts:
        if deny:
            raise parts["rules"].fail("deny rules cannot carry L7 rules")
        rules = parts["rules"].mapping(("http", "dns", "kafka", "l7proto", "l7"))
        for unsupported in ("kafka", "l7proto", "l7"):
            if unsupported in rules:
                raise rules[unsupported].fail("not supported by flowscope")
        http = [_http(h) for h in rules["http"].items()] if "http" in rules else []
        dns = [_dns(d) for d in rules["dns"].items()] if "dns" in rules else []
    return ports, http, dns


def _port(field: Field) -> PortSpec:
    parts = field.mapping(("port", "protocol", "endPort"), required=("port",))
    protocol = parts["protocol"].choice(("TCP", "UDP", "SCTP", "ANY"), case_insensitive=True) \
        if "protocol" in parts else "ANY"
    raw = parts["port"].value
    text = str(raw) if isinstance(raw, int) and not isinstance(raw, bool) else raw
    if not isinstance(text, str) or not text:
        raise parts["port"].fail("expected a port number (as a string or integer) or a port name")
    if not (text.isascii() and text.isdigit()):  # "²".isdigit() is True, int("²") fails
        return PortSpec(protocol, name=port_name(parts["port"], text))
    number = int(text)
    if not 0 <= number <= 65535:
        raise parts["port"].fail(f"{number} is out of range 0-65535")
    end = parts["endPort"].integer(number, 65535) if "endPort" in parts else None
    # Cilium: port 0 means every port.
    return PortSpec(protocol, number or None, end if number else None)


def _http(field: Field) -> HttpRule:
    parts = field.mapping(("method", "path", "host", "headers", "headerMatches"))
    for key in ("method", "path", "host"):
        if key in parts:
            _regex(parts[key])
    headers = []
    for h in parts["headers"].items() if "headers" in parts else []:
        name, sep, value = h.string().partition(":")
        headers.append((name.strip(), value.strip() if sep else None))
    for h in parts["headerMatches"].items() if "headerMatches" in parts else []:
        hm = h.mapping(("name", "value", "mismatch", "secret"), required=("name",))
        headers.append((hm["name"].string(), hm["value"].string(allow_empty=True) if "value" in hm else None))
    return HttpRule(parts["method"].value if "method" in parts else None,
                    parts["path"].value if "path" in parts else None,
                    parts["host"].value if "host" in parts else None, tuple(headers))


def _regex(field: Field) -> str:
    text = field.string()
    try:
        patterns.check_regex(text)
    except patterns.PatternError as err:
        raise field.fail(f"not a valid regular expression: {err.reason}") from None
    return text


def _dns(field: Field) -> DnsRule:
    name, pattern = _name_match(field)
    return DnsRule(name, pattern)
