"""Kubernetes NetworkPolicy (networking.k8s.io/v1) into the policy model, with its semantics:
podSelector selects pods of the policy's namespace ({} = all of them); policyTypes defaults to Ingress,
plus Egress when an egress section is present; a selected pod is isolated for each type listed and
only what some rule allows passes; an absent `from`/`to` means every peer and absent `ports` every port;
podSelector + namespaceSelector in one peer means those pods in those namespaces."""

from __future__ import annotations

from enforcer.policy.common import cidr_with_excepts, metadata, port_name, selector
from enforcer.policy.model import EGRESS, INGRESS, CidrPeer, EndpointSelector, Peer, Policy, PortSpec, Rule
from enforcer.policy.walk import Field

KIND = "NetworkPolicy"
API_VERSION = "networking.k8s.io/v1"


def parse(doc: Field) -> Policy:
    top = doc.mapping(("apiVersion", "kind", "metadata", "spec", "status"), required=("metadata", "spec"))
    name, namespace, labels = metadata(top["metadata"], namespaced=True)
    spec = top["spec"].mapping(("podSelector", "policyTypes", "ingress", "egress"), required=("podSelector",))
    subject = EndpointSelector(selector(spec["podSelector"]), namespace=namespace)
    types = _policy_types(spec)
    ingress = egress = None
    if INGRESS in types:
        ingress = tuple(_rule(r, "from", namespace) for r in spec.get("ingress", top["spec"].child("ingress", None)).items())
    elif "ingress" in spec and spec["ingress"].value:
        raise spec["ingress"].fail("ingress rules given but policyTypes does not include Ingress")
    if EGRESS in types:
        egress = tuple(_rule(r, "to", namespace) for r in spec.get("egress", top["spec"].child("egress", None)).items())
    elif "egress" in spec and spec["egress"].value:
        raise spec["egress"].fail("egress rules given but policyTypes does not include Egress")
    return Policy(KIND, name, namespace, subject, ingress, egress, labels, doc.doc.file, doc.doc.index, doc.value)


def _policy_types(spec: dict[str, Field]) -> set[str]:
    if "policyTypes" not in spec:
        return {INGRESS} | ({EGRESS} if "egress" in spec else set())
    types = set()
    for item in spec["policyTypes"].items():
        types.add(item.choice(("Ingress", "Egress")).lower())
    return types


def _rule(field: Field, peer_key: str, namespace: str) -> Rule:
    parts = field.mapping((peer_key, "ports"))
    peers: tuple[Peer, ...] | None = None
    if peer_key in parts and parts[peer_key].value is not None:
        items = parts[peer_key].items()
        peers = tuple(_peer(p, namespace) for p in items) if items else None
    ports = tuple(_port(p) for p in parts["ports"].items()) if "ports" in parts else ()
    return Rule(field.path, peers, ports)


def _peer(field: Field, namespace: str) -> Peer:
    parts = field.mapping(("podSelector", "namespaceSelector", "ipBlock"))
    if not parts:
        raise field.fail("a peer needs podSelector, namespaceSelector or ipBlock")
    if "ipBlock" in parts:
        if len(parts) > 1:
            raise field.fail("ipBlock cannot be combined with podSelector or namespaceSelector")
        block, excepts = cidr_with_excepts(parts["ipBlock"], "cidr", "except")
        return CidrPeer(block, excepts)
    pods = selector(parts["podSelector"]) if "podSelector" in parts else selector(field.child("podSelector", {}))
    if "namespaceSelector" in parts:
        return EndpointSelector(pods, None, selector(parts["namespaceSelector"]))
    return EndpointSelector(pods, namespace)


def _port(field: Field) -> PortSpec:
    parts = field.mapping(("protocol", "port", "endPort"))
    protocol = parts["protocol"].choice(("TCP", "UDP", "SCTP")) if "protocol" in parts else "TCP"
    if "port" not in parts:
        if "endPort" in parts:
            raise parts["endPort"].fail("endPort needs a numeric port")
        return PortSpec(protocol)
    port_field = parts["port"]
    if isinstance(port_field.value, str) and not (port_field.value.isascii() and port_field.value.isdigit()):
        if "endPort" in parts:
            raise parts["endPort"].fail("endPort cannot be used with a named port")
        return PortSpec(protocol, name=port_name(port_field, port_field.value))
    if isinstance(port_field.value, str):
        port_field = field.child("port", int(port_field.value))
    port = port_field.integer(1, 65535)
    end = None
    if "endPort" in parts:
        end = parts["endPort"].integer(1, 65535)
        if end < port:
            raise parts["endPort"].fail(f"endPort {end} is below port {port}")
    return PortSpec(protocol, port, end)
