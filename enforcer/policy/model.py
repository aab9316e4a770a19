"""One policy model for both Kubernetes NetworkPolicy and CiliumNetworkPolicy: whom a policy selects,
and per direction the rules (peers, ports, L7) that allow or deny. Parsers (k8s.py, cilium.py) build it;
evaluation (enforcer.evaluate) and compilation (enforcer.compile) read it.

Peers are matched on `PeerInfo`, the labels and address of the other end of a connection, built from a
collector Endpoint or from a stored flow's endpoint.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field

from common import patterns
from enforcer.policy.selectors import LabelSelector

INGRESS = "ingress"
EGRESS = "egress"
PROTOCOLS = ("TCP", "UDP", "SCTP")
PROTO_NUMBERS = {"TCP": 6, "UDP": 17, "SCTP": 132, "ICMP": 1, "ICMPV6": 58}
ENTITIES = ("world", "cluster", "host", "all", "remote-node", "kube-apiserver", "health", "init",
            "unmanaged", "ingress")
NAMESPACE_LABEL = "io.kubernetes.pod.namespace"
NS_LABEL_PREFIX = "io.cilium.k8s.namespace.labels."
K8S_NAMESPACE_NAME_LABEL = "kubernetes.io/metadata.name"


@dataclass(frozen=True)
class PeerInfo:
    """One end of a connection as policies see it. `kind` is "endpoint" (a pod), "host",
    "remote-node" or "world"."""

    kind: str
    namespace: str = ""
    labels: dict[str, str] = field(default_factory=dict, hash=False, compare=False)
    namespace_labels: dict[str, str] = field(default_factory=dict, hash=False, compare=False)
    service_account: str = ""
    cluster: str = "default"
    ip: str = ""
    names: tuple[str, ...] = ()                         # DNS names known for the IP (toFQDNs)
    named_ports: dict[str, tuple[str, int]] = field(default_factory=dict, hash=False, compare=False)
    pod_name: str = ""
    workload: str = ""

    def k8s_namespace_labels(self) -> dict[str, str]:
        return {K8S_NAMESPACE_NAME_LABEL: self.namespace, **self.namespace_labels}

    def cilium_labels(self) -> dict[str, str]:
        """Labels as Cilium selectors see them: pod labels plus the namespace, service account,
        cluster and namespace labels under their io.cilium/io.kubernetes keys."""
        out = dict(self.labels)
        out[NAMESPACE_LABEL] = self.namespace
        if self.service_account:
            out["io.cilium.k8s.policy.serviceaccount"] = self.service_account
        out["io.cilium.k8s.policy.cluster"] = self.cluster
        out.update({NS_LABEL_PREFIX + k: v for k, v in self.k8s_namespace_labels().items()})
        return out


@dataclass(frozen=True)
class EndpointSelector:
    """Pods chosen by labels. `namespace` limits them to one namespace (None: any namespace);
    `namespace_selector` (Kubernetes only) to namespaces whose labels match; `cilium` says which
    label view the pod selector reads."""

    selector: LabelSelector
    namespace: str | None = None
    namespace_selector: LabelSelector | None = None
    cilium: bool = False

    def matches(self, peer: PeerInfo) -> bool:
        if peer.kind != "endpoint":
            return False
        if self.namespace is not None and peer.namespace != self.namespace:
            return False
        if self.namespace_selector is not None and not self.namespace_selector.matches(peer.k8s_namespace_labels()):
            return False
        return self.selector.matches(peer.cilium_labels() if self.cilium else peer.labels)


@dataclass(frozen=True)
class EntityPeer:
    entity: str

    def matches(self, peer: PeerInfo) -> bool:
        if self.entity == "all":
            return True
        if self.entity == "cluster":
            return peer.kind in ("endpoint", "host", "remote-node")
        return peer.kind == self.entity


@dataclass(frozen=True)
class CidrPeer:
    """An IP block. Like Cilium, it matches only addresses that are not cluster endpoints (a pod's
    address has the pod's identity, not the block's), which is also what the kernel's ipcache does."""

    cidr: str
    excepts: tuple[str, ...] = ()

    def matches(self, peer: PeerInfo) -> bool:
        if peer.kind == "endpoint" or not peer.ip:
            return False
        try:
            ip = ipaddress.ip_address(peer.ip)
        except ValueError:
            return False
        net = ipaddress.ip_network(self.cidr, strict=False)
        return ip.version == net.version and ip in net and not any(
            ip in ipaddress.ip_network(e, strict=False) for e in self.excepts
            if ipaddress.ip_network(e, strict=False).version == ip.version)


def fqdn_matcher(match_name: str | None, match_pattern: str | None) -> patterns.Matcher:
    """Cilium's toFQDNs / rules.dns name matching: exact name, or a pattern where `*` is any run of
    DNS characters within one label and a lone `*` is every name. Case-insensitive, trailing dot ignored.
    Linear-time (RE2) and compiled once per pattern: every DNS answer a collector sees runs through it."""
    if match_name is not None:
        regex = patterns.literal(match_name.rstrip(".").lower()) + r"\.?"
    else:
        pattern = (match_pattern or "").rstrip(".").lower()
        regex = ".*" if pattern == "*" else patterns.glob_regex(pattern, star="[-a-z0-9_]*") + r"\.?"
    return patterns.cached_match(regex, full=True, ignore_case=True)


@dataclass(frozen=True)
class FqdnPeer:
    match_name: str | None = None
    match_pattern: str | None = None

    def matches_name(self, name: str) -> bool:
        return fqdn_matcher(self.match_name, self.match_pattern)(name.lower())

    def matches(self, peer: PeerInfo) -> bool:
        return peer.kind == "world" and any(self.matches_name(n) for n in peer.names)


Peer = EndpointSelector | EntityPeer | CidrPeer | FqdnPeer


@dataclass(frozen=True)
class PortSpec:
    """protocol TCP/UDP/SCTP or ANY (all three); port None = every port; `name` a named port."""

    protocol: str = "TCP"
    port: int | None = None
    end_port: int | None = None
    name: str | None = None

    def protocols(self) -> tuple[str, ...]:
        return PROTOCOLS if self.protocol == "ANY" else (self.protocol,)

    def matches(self, protocol: str, port: int, named: dict[str, tuple[str, int]]) -> bool:
        if protocol not in self.protocols():
            return False
        if self.name is not None:
            resolved = named.get(self.name)
            return resolved is not None and resolved == (protocol, port)
        if self.port is None:
            return True
        return self.port <= port <= (self.end_port or self.port)


@dataclass(frozen=True)
class HttpRule:
    method: str | None = None          # regex, as in Cilium
    path: str | None = None            # regex, full match
    host: str | None = None
    headers: tuple[tuple[str, str | None], ...] = ()   # (name, value or None = present)

    def matches(self, method: str, path: str, host: str, headers: dict[str, str]) -> bool:
        # Cilium's regexes are Go's (RE2): the same linear-time matcher, compiled once per pattern.
        if self.method and not patterns.cached_match(self.method, full=True, ignore_case=True)(method):
            return False
        if self.path and not patterns.cached_match(self.path, full=True)(path):
            return False
        if self.host and not patterns.cached_match(self.host, full=True, ignore_case=True)(host):
            return False
        for name, value in self.headers:
            have = headers.get(name.lower())
            if have is None or (value is not None and have != value):
                return False
        return True

    def to_dict(self) -> dict:
        out: dict = {}
        if self.method:
            out["method"] = self.method
        if self.path:
            out["path"] = self.path
        if self.host:
            out["host"] = self.host
        if self.headers:
            out["headers"] = [f"{k}: {v}" if v is not None else k for k, v in self.headers]
        return out


@dataclass(frozen=True)
class DnsRule:
    match_name: str | None = None
    match_pattern: str | None = None

    def matches(self, query: str) -> bool:
        return fqdn_matcher(self.match_name, self.match_pattern)(query.rstrip(".").lower())


@dataclass(frozen=True)
class Rule:
    """One ingress/egress (or deny) rule. `peers` None = any peer; `ports` empty = any port and protocol.
    `path` locates it in its document (spec.ingress[0]) for reports."""

    path: str
    peers: tuple[Peer, ...] | None = None
    ports: tuple[PortSpec, ...] = ()
    http: tuple[HttpRule, ...] = ()
    dns: tuple[DnsRule, ...] = ()
    deny: bool = False

    def matches_peer(self, peer: PeerInfo) -> bool:
        return self.peers is None or any(p.matches(peer) for p in self.peers)

    def matches_port(self, protocol: str, port: int, named: dict[str, tuple[str, int]]) -> bool:
        return not self.ports or any(p.matches(protocol, port, named) for p in self.ports)

    @property
    def has_l7(self) -> bool:
        return bool(self.http or self.dns)


@dataclass(frozen=True)
class Policy:
    kind: str                          # NetworkPolicy, CiliumNetworkPolicy, CiliumClusterwideNetworkPolicy
    name: str
    namespace: str                     # "" for cluster-wide
    subject: EndpointSelector
    ingress: tuple[Rule, ...] | None   # None: the policy does not affect ingress
    egress: tuple[Rule, ...] | None
    labels: tuple[tuple[str, str], ...] = ()
    file: str = ""
    document: int = 0
    raw: dict = field(default_factory=dict, compare=False, hash=False)   # the document, to store and re-load

    @property
    def key(self) -> str:
        return f"{self.kind}/{self.namespace}/{self.name}"

    def rules(self, direction: str) -> tuple[Rule, ...] | None:
        return self.ingress if direction == INGRESS else self.egress

    def selects(self, endpoint: PeerInfo) -> bool:
        return self.subject.matches(endpoint)
