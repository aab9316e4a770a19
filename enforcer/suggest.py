"""Least-privilege policies per workload from observed flows (`flowscope policy suggest`).

For each workload seen in the flows: a selector from its stable labels (never pod-template-hash or
other per-pod labels), the smallest one that selects exactly the workload's pods among the known pods;
ingress from and egress to exactly the peers and ports observed, each peer by its own stable selector
(and namespace), cluster DNS included under the DNS pods' actual labels; world destinations as toFQDNs
when their DNS names are known (Cilium format), as /32 or /128 blocks otherwise; optionally (Cilium, --l7)
HTTP rules with generalised paths. Every rule carries its evidence: flow count, first and last seen.
"""

from __future__ import annotations

import datetime
import ipaddress
import itertools
import re
from dataclasses import dataclass, field
from typing import Iterable

from common.endpoints import PER_POD_LABEL_KEYS
from enforcer.evaluate import flow_l4, flow_l7, flow_peers, is_connection_request
from enforcer.policy.model import K8S_NAMESPACE_NAME_LABEL, NAMESPACE_LABEL, PeerInfo
from proto.flow import flow_pb2

K8S = "k8s"
CILIUM = "cilium"
PREFERRED_KEYS = ("app.kubernetes.io/name", "app", "k8s-app", "name", "app.kubernetes.io/component",
                  "component", "app.kubernetes.io/instance", "tier")
EVIDENCE_ANNOTATION = "flowscope.io/evidence"


@dataclass
class Evidence:
    flows: int = 0
    first_ns: int = 0
    last_ns: int = 0

    def add(self, t_ns: int) -> None:
        self.flows += 1
        self.first_ns = t_ns if not self.first_ns else min(self.first_ns, t_ns)
        self.last_ns = max(self.last_ns, t_ns)

    def text(self) -> str:
        return f"{self.flows} flows, first {_iso(self.first_ns)}, last {_iso(self.last_ns)}"


@dataclass(frozen=True)
class PeerKey:
    """Who is on the other side, as a policy names it."""

    kind: str                     # endpoint, world, host, remote-node
    namespace: str = ""
    workload: str = ""
    ip: str = ""                  # world/host without names
    fqdn: str = ""                # world with a known DNS name


@dataclass
class Workload:
    namespace: str
    name: str
    pods: dict[str, PeerInfo] = field(default_factory=dict)          # pod name -> labels
    ingress: dict[PeerKey, dict[tuple[str, int], Evidence]] = field(default_factory=dict)
    egress: dict[PeerKey, dict[tuple[str, int], Evidence]] = field(default_factory=dict)
    http: dict[tuple[str, int], dict[tuple[str, str], Evidence]] = field(default_factory=dict)  # server side
    dns_peers: set[PeerKey] = field(default_factory=set)


@dataclass
class Suggestion:
    namespace: str
    workload: str
    document: dict
    header: str
    warnings: list[str]

    def yaml(self) -> str:
        import yaml
        body = yaml.safe_dump(self.document, sort_keys=False, default_flow_style=False, width=120)
        comments = "".join(f"# {line}\n" for line in self.header.splitlines())
        comments += "".join(f"# WARNING: {w}\n" for w in self.warnings)
        return comments + body


@dataclass
class Observed:
    """Everything suggest learns from the flows."""

    workloads: dict[tuple[str, str], Workload] = field(default_factory=dict)
    flows: int = 0
    skipped: dict[str, int] = field(default_factory=dict)
    fqdn_ips: dict[str, set[str]] = field(default_factory=dict)     # DNS name -> addresses seen for it

    def workload(self, peer: PeerInfo) -> Workload:
        key = (peer.namespace, peer.workload or peer.pod_name)
        w = self.workloads.get(key)
        if w is None:
            w = self.workloads[key] = Workload(*key)
        if peer.pod_name:
            w.pods.setdefault(peer.pod_name, peer)
        return w


def observe(flows: Iterable[flow_pb2.Flow], observed: Observed | None = None) -> Observed:
    """Fold flows into per-workload peers, ports and HTTP requests. Replies and drops are left out:
    the policy is for the traffic that flowed."""
    obs = observed or Observed()
    for flow in flows:
        obs.flows += 1
        if flow.verdict not in (flow_pb2.FORWARDED, flow_pb2.AUDIT) or not is_connection_request(flow):
            obs.skipped["replies and drops"] = obs.skipped.get("replies and drops", 0) + 1
            continue
        protocol, port = flow_l4(flow)
        if protocol not in ("TCP", "UDP", "SCTP"):
            obs.skipped[protocol or "non-IP"] = obs.skipped.get(protocol or "non-IP", 0) + 1
            continue
        src, dst = flow_peers(flow)
        t_ns = flow.time.seconds * 1_000_000_000 + flow.time.nanos
        if src.kind == "endpoint":
            w = obs.workload(src)
            peer = _peer_key(dst, obs)
            w.egress.setdefault(peer, {}).setdefault((protocol, port), Evidence()).add(t_ns)
            if port == 53:
                w.dns_peers.add(peer)
        if dst.kind == "endpoint":
            w = obs.workload(dst)
            w.ingress.setdefault(_peer_key(src, obs), {}).setdefault((protocol, port), Evidence()).add(t_ns)
            l7 = flow_l7(flow)
            if l7 is not None and l7.is_http:
                w.http.setdefault((protocol, port), {}).setdefault(
                    (l7.http_method, generalise_path(l7.http_path)), Evidence()).add(t_ns)
    return obs


def _peer_key(peer: PeerInfo, obs: Observed) -> PeerKey:
    if peer.kind == "endpoint":
        return PeerKey("endpoint", peer.namespace, obs.workload(peer).name)
    if peer.kind == "world" and peer.names:
        key = PeerKey("world", fqdn=peer.names[0].rstrip("."))
        obs.fqdn_ips.setdefault(key.fqdn, set()).add(peer.ip)
        return key
    return PeerKey(peer.kind, ip=peer.ip)


_NUMBER = re.compile(r"[0-9]+")
_HEX_ID = re.compile(r"[0-9a-fA-F]{8,}|[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")


def generalise_path(path: str) -> str:
    """A path regex where ids become patterns: /users/123 -> /users/[0-9]+, UUIDs and long hex ids
    -> [0-9a-fA-F-]+; the rest is literal (escaped). The query string is left out."""
    path = path.split("?", 1)[0] or "/"
    parts = []
    for segment in path.split("/"):
        if _NUMBER.fullmatch(segment):
            parts.append("[0-9]+")
        elif _HEX_ID.fullmatch(segment) and any(c.isdigit() for c in segment):
            parts.append("[0-9a-fA-F-]+")
        else:
            parts.append(re.escape(segment))
    return "/".join(parts)


# ---- selectors ----------------------------------------------------------------------------------------

def stable_labels(pods: Iterable[PeerInfo]) -> dict[str, str]:
    """Labels every pod of the workload has with the same value, minus per-pod ones."""
    pods = list(pods)
    common = dict(pods[0].labels) if pods else {}
    for pod in pods[1:]:
        common = {k: v for k, v in common.items() if pod.labels.get(k) == v}
    return {k: v for k, v in common.items()
            if k not in PER_POD_LABEL_KEYS and not any(v == p.pod_name for p in pods)}


def choose_selector(workload: Workload, namespace_pods: list[PeerInfo]) -> tuple[dict[str, str], list[str]]:
    """The smallest set of stable labels selecting exactly the workload's pods among `namespace_pods`
    (every known pod of its namespace). Returns (matchLabels, warnings)."""
    labels = stable_labels(workload.pods.values())
    mine = set(workload.pods)
    if not labels:
        return {}, [f"{workload.namespace}/{workload.name}: no stable labels; the policy selects every pod "
                    "of the namespace"]
    keys = sorted(labels, key=lambda k: (PREFERRED_KEYS.index(k) if k in PREFERRED_KEYS else len(PREFERRED_KEYS), k))
    for size in range(1, min(3, len(keys)) + 1):
        for combo in itertools.combinations(keys, size):
            chosen = {k: labels[k] for k in combo}
            if _selected(chosen, namespace_pods) == mine:
                return chosen, []
    extra = sorted(_selected(labels, namespace_pods) - mine)
    warnings = [f"{workload.namespace}/{workload.name}: its labels also select {', '.join(extra)}"] if extra else []
    return labels, warnings


def _selected(match_labels: dict[str, str], pods: list[PeerInfo]) -> set[str]:
    return {p.pod_name for p in pods if all(p.labels.get(k) == v for k, v in match_labels.items())}


# ---- documents ----------------------------------------------------------------------------------------

@dataclass
class SuggestOptions:
    format: str = K8S
    l7: bool = False
    namespaces: tuple[str, ...] = ()
    known_pods: list[PeerInfo] = field(default_factory=list)   # every pod (from the lab or the cluster)


def suggest(obs: Observed, options: SuggestOptions) -> list[Suggestion]:
    pods_by_ns: dict[str, dict[str, PeerInfo]] = {}
    for pod in options.known_pods:
        pods_by_ns.setdefault(pod.namespace, {})[pod.pod_name] = pod
    for w in obs.workloads.values():
        for name, pod in w.pods.items():
            pods_by_ns.setdefault(w.namespace, {}).setdefault(name, pod)
    selectors: dict[tuple[str, str], tuple[dict[str, str], list[str]]] = {
        key: choose_selector(w, list(pods_by_ns.get(w.namespace, {}).values())) for key, w in obs.workloads.items()}
    out = []
    for key, w in sorted(obs.workloads.items()):
        if options.namespaces and w.namespace not in options.namespaces:
            continue
        build = _cilium_document if options.format == CILIUM else _k8s_document
        doc, evidence = build(w, selectors, options, obs)
        header = (f"flowscope policy suggest: {w.namespace}/{w.name} ({len(w.pods)} pods), least privilege from "
                  f"{sum(e.flows for rules in (w.ingress, w.egress) for ports in rules.values() for e in ports.values())}"
                  " flows")
        doc["metadata"]["annotations"] = {f"{EVIDENCE_ANNOTATION}.{k}": v for k, v in evidence.items()}
        out.append(Suggestion(w.namespace, w.name, doc, header, list(selectors[key][1])))
    return out


def _policy_name(w: Workload) -> str:
    name = re.sub(r"[^a-z0-9.-]", "-", w.name.lower()).strip("-.") or "workload"
    return f"{name}-least-privilege"[:253]


def _merged(ports: dict[tuple[str, int], Evidence]) -> Evidence:
    total = Evidence()
    for e in ports.values():
        total.flows += e.flows
        total.first_ns = e.first_ns if not total.first_ns else min(total.first_ns, e.first_ns)
        total.last_ns = max(total.last_ns, e.last_ns)
    return total


def _sorted_peers(rules: dict[PeerKey, dict]) -> list[PeerKey]:
    return sorted(rules, key=lambda p: (p.kind, p.namespace, p.workload, p.fqdn, p.ip))


def _k8s_document(w: Workload, selectors, options: SuggestOptions, obs: Observed) -> tuple[dict, dict[str, str]]:
    evidence: dict[str, str] = {}
    ingress, egress = [], []
    for direction, rules, out, peer_field in (("ingress", w.ingress, ingress, "from"),
                                               ("egress", w.egress, egress, "to")):
        for peer in _sorted_peers(rules):
            ports = rules[peer]
            out.append({peer_field: _k8s_peers(peer, w, selectors, obs), "ports": _k8s_ports(ports)})
            evidence[f"{direction}.{len(out) - 1}"] = f"{_describe(peer)}: {_merged(ports).text()}"
    doc = {
        "apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
        "metadata": {"name": _policy_name(w), "namespace": w.namespace},
        "spec": {"podSelector": {"matchLabels": selectors[(w.namespace, w.name)][0]},
                 "policyTypes": ["Ingress", "Egress"], "ingress": ingress, "egress": egress},
    }
    return doc, evidence


def _k8s_peers(peer: PeerKey, w: Workload, selectors, obs: Observed) -> list[dict]:
    if peer.kind == "endpoint":
        out: dict = {"podSelector": {"matchLabels": selectors[(peer.namespace, peer.workload)][0]}}
        if peer.namespace != w.namespace:
            out["namespaceSelector"] = {"matchLabels": {K8S_NAMESPACE_NAME_LABEL: peer.namespace}}
        return [out]
    ips = sorted(obs.fqdn_ips.get(peer.fqdn, ())) if peer.fqdn else [peer.ip]
    return [{"ipBlock": {"cidr": _host_cidr(ip)}} for ip in ips]


def _k8s_ports(ports: dict[tuple[str, int], Evidence]) -> list[dict]:
    return [{"protocol": proto, "port": port} for proto, port in sorted(ports)]


def _cilium_document(w: Workload, selectors, options: SuggestOptions, obs: Observed) -> tuple[dict, dict[str, str]]:
    evidence: dict[str, str] = {}
    spec: dict = {"endpointSelector": {"matchLabels": selectors[(w.namespace, w.name)][0]}}
    for direction, rules in (("ingress", w.ingress), ("egress", w.egress)):
        out: list[dict] = []
        for peer in _sorted_peers(rules):
            ports = rules[peer]
            rule = _cilium_peer(peer, w, selectors, direction)
            to_ports: dict = {"ports": [{"port": str(port), "protocol": proto} for proto, port in sorted(ports)]}
            if direction == "egress" and peer in w.dns_peers:
                # Cilium learns toFQDNs names only through its DNS proxy: DNS rules are needed there.
                to_ports["rules"] = {"dns": [{"matchPattern": "*"}]}
            elif direction == "ingress" and options.l7:
                http = _http_rules(w, ports)
                if http:
                    to_ports["rules"] = {"http": http}
            rule["toPorts"] = [to_ports]
            out.append(rule)
            evidence[f"{direction}.{len(out) - 1}"] = f"{_describe(peer)}: {_merged(ports).text()}"
        spec[direction] = out or [{}]
    doc = {"apiVersion": "cilium.io/v2", "kind": "CiliumNetworkPolicy",
           "metadata": {"name": _policy_name(w), "namespace": w.namespace}, "spec": spec}
    return doc, evidence


def _cilium_peer(peer: PeerKey, w: Workload, selectors, direction: str) -> dict:
    prefix = "from" if direction == "ingress" else "to"
    if peer.kind == "endpoint":
        labels = dict(selectors[(peer.namespace, peer.workload)][0])
        labels[f"k8s:{NAMESPACE_LABEL}"] = peer.namespace
        return {f"{prefix}Endpoints": [{"matchLabels": labels}]}
    if peer.kind in ("host", "remote-node"):
        return {f"{prefix}Entities": [peer.kind]}
    if peer.fqdn and direction == "egress":
        return {"toFQDNs": [{"matchName": peer.fqdn}]}
    return {f"{prefix}CIDR": [_host_cidr(peer.ip)]}


def _http_rules(w: Workload, ports: dict[tuple[str, int], Evidence]) -> list[dict]:
    seen = set()
    for key in ports:
        seen.update(w.http.get(key, {}))
    return [{"method": method, "path": path} for method, path in sorted(seen)]


def _describe(peer: PeerKey) -> str:
    if peer.kind == "endpoint":
        return f"{peer.namespace}/{peer.workload}"
    return peer.fqdn or f"{peer.kind} {peer.ip}"


def _host_cidr(ip: str) -> str:
    return str(ipaddress.ip_network(ip)) if ip else "0.0.0.0/0"


def _iso(t_ns: int) -> str:
    return datetime.datetime.fromtimestamp(t_ns / 1e9, datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
