"""Policy semantics, table-driven: Kubernetes NetworkPolicy and the Cilium subset, evaluated in Python."""

import pytest

from enforcer.evaluate import ALLOWED, DEFAULT_DENY, EXPLICIT_DENY, NO_POLICY, L7Request, decide, evaluate_flow
from enforcer.policy import EGRESS, INGRESS, PeerInfo, parse_text
from tests.enforcer.helpers import PEERS, make_flow

NP = "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\n"
CNP = "apiVersion: cilium.io/v2\nkind: CiliumNetworkPolicy\n"
WORLD = PeerInfo(kind="world", ip="198.51.100.10", names=("api.example.com",))
WORLD_OTHER = PeerInfo(kind="world", ip="203.0.113.99")
HOST = PeerInfo(kind="host", ip="10.244.0.1")

BACKEND_FROM_FRONTEND = NP + """metadata: {name: backend-ingress, namespace: shop}
spec:
  podSelector: {matchLabels: {app: backend}}
  ingress:
  - from: [{podSelector: {matchLabels: {app: frontend}}}]
    ports: [{port: 8080}]
"""
DENY_ALL_INGRESS_SHOP = NP + """metadata: {name: deny-all, namespace: shop}
spec: {podSelector: {}}
"""
ALLOW_ALL_INGRESS_SHOP = NP + """metadata: {name: allow-all, namespace: shop}
spec:
  podSelector: {}
  ingress: [{}]
"""
EGRESS_ONLY = NP + """metadata: {name: fe-egress, namespace: shop}
spec:
  podSelector: {matchLabels: {app: frontend}}
  policyTypes: [Egress]
  egress:
  - to: [{namespaceSelector: {matchLabels: {team: data}}, podSelector: {matchLabels: {app: database}}}]
    ports: [{port: 6379}]
  - to: [{namespaceSelector: {matchLabels: {kubernetes.io/metadata.name: kube-system}},
          podSelector: {matchLabels: {k8s-app: kube-dns}}}]
    ports: [{port: 53, protocol: UDP}]
  - to: [{ipBlock: {cidr: 198.51.100.0/24, except: [198.51.100.128/25]}}]
"""
NS_ONLY = NP + """metadata: {name: db, namespace: data}
spec:
  podSelector: {matchExpressions: [{key: app, operator: In, values: [database]}]}
  ingress:
  - from: [{namespaceSelector: {matchLabels: {team: shop}}}]
    ports: [{port: 6000, endPort: 6400, protocol: TCP}]
"""
SEPARATE_PEERS = NP + """metadata: {name: db-or, namespace: data}
spec:
  podSelector: {matchLabels: {app: database}}
  ingress:
  - from: [{namespaceSelector: {matchLabels: {team: shop}}}, {podSelector: {matchLabels: {app: backend}}}]
"""
NAMED_PORT = NP + """metadata: {name: named, namespace: shop}
spec:
  podSelector: {matchLabels: {app: backend}}
  ingress: [{ports: [{port: http}]}]
"""
CILIUM_BACKEND = CNP + """metadata: {name: backend-l7, namespace: shop}
spec:
  endpointSelector: {matchLabels: {app: backend}}
  ingress:
  - fromEndpoints: [{matchLabels: {"k8s:app": frontend}}]
    toPorts:
    - ports: [{port: "8080", protocol: TCP}]
      rules: {http: [{method: GET, path: "/api/users(/[0-9]+)?"}]}
  ingressDeny:
  - fromEndpoints: [{matchLabels: {app: intruder}}]
"""
CILIUM_EGRESS = CNP + """metadata: {name: fe-out, namespace: shop}
spec:
  endpointSelector: {matchLabels: {app: frontend}}
  egress:
  - toFQDNs: [{matchPattern: "*.example.com"}]
    toPorts: [{ports: [{port: "80"}]}]
  - toEndpoints: [{matchLabels: {"k8s:io.kubernetes.pod.namespace": kube-system, k8s-app: kube-dns}}]
    toPorts: [{ports: [{port: "53", protocol: UDP}], rules: {dns: [{matchPattern: "*"}]}}]
  - toEntities: [host]
  - toCIDRSet: [{cidr: 203.0.113.0/24, except: [203.0.113.0/28]}]
  egressDeny:
  - toEndpoints: [{}]
    toPorts: [{ports: [{port: "22"}]}]
"""
CILIUM_EMPTY_RULE = CNP + """metadata: {name: lockdown, namespace: data}
spec:
  endpointSelector: {}
  ingress: [{}]
"""
CILIUM_ENTITY_CLUSTER = CNP + """metadata: {name: cluster-only, namespace: data}
spec:
  endpointSelector: {matchLabels: {app: database}}
  ingress: [{fromEntities: [cluster]}]
"""


def P(*texts):
    return [p for t in texts for p in parse_text(t)]


CASES = [
    # policies, subject, direction, peer, proto, port, reason, policy name
    ([], "backend", INGRESS, "frontend", "TCP", 8080, NO_POLICY, None),
    (P(BACKEND_FROM_FRONTEND), "backend", INGRESS, "frontend", "TCP", 8080, ALLOWED, "backend-ingress"),
    (P(BACKEND_FROM_FRONTEND), "backend2", INGRESS, "frontend", "TCP", 8080, ALLOWED, "backend-ingress"),
    (P(BACKEND_FROM_FRONTEND), "backend", INGRESS, "frontend", "TCP", 9090, DEFAULT_DENY, None),
    (P(BACKEND_FROM_FRONTEND), "backend", INGRESS, "frontend", "UDP", 8080, DEFAULT_DENY, None),
    (P(BACKEND_FROM_FRONTEND), "backend", INGRESS, "intruder", "TCP", 8080, DEFAULT_DENY, None),
    (P(BACKEND_FROM_FRONTEND), "backend", EGRESS, "database", "TCP", 6379, NO_POLICY, None),
    (P(BACKEND_FROM_FRONTEND), "frontend", INGRESS, "intruder", "TCP", 8080, NO_POLICY, None),
    # podSelector alone is namespaced: a frontend-labelled pod elsewhere is not selected as a peer
    (P(BACKEND_FROM_FRONTEND.replace("app: frontend", "k8s-app: kube-dns")), "backend", INGRESS, "coredns",
     "TCP", 8080, DEFAULT_DENY, None),
    (P(DENY_ALL_INGRESS_SHOP), "frontend", INGRESS, "backend", "TCP", 8080, DEFAULT_DENY, None),
    (P(DENY_ALL_INGRESS_SHOP), "frontend", EGRESS, "backend", "TCP", 8080, NO_POLICY, None),
    (P(DENY_ALL_INGRESS_SHOP), "database", INGRESS, "backend", "TCP", 6379, NO_POLICY, None),
    (P(DENY_ALL_INGRESS_SHOP, ALLOW_ALL_INGRESS_SHOP), "frontend", INGRESS, WORLD, "TCP", 1, ALLOWED, "allow-all"),
    (P(EGRESS_ONLY), "frontend", EGRESS, "database", "TCP", 6379, ALLOWED, "fe-egress"),
    (P(EGRESS_ONLY), "frontend", EGRESS, "backend", "TCP", 6379, DEFAULT_DENY, None),
    (P(EGRESS_ONLY), "frontend", EGRESS, "coredns", "UDP", 53, ALLOWED, "fe-egress"),
    (P(EGRESS_ONLY), "frontend", EGRESS, "coredns", "TCP", 53, DEFAULT_DENY, None),
    (P(EGRESS_ONLY), "frontend", EGRESS, WORLD, "TCP", 443, ALLOWED, "fe-egress"),
    (P(EGRESS_ONLY), "frontend", EGRESS, PeerInfo(kind="world", ip="198.51.100.200"), "TCP", 443,
     DEFAULT_DENY, None),
    (P(EGRESS_ONLY), "frontend", INGRESS, "backend", "TCP", 80, NO_POLICY, None),   # policyTypes: Egress only
    (P(NS_ONLY), "database", INGRESS, "backend", "TCP", 6379, ALLOWED, "db"),        # endPort range
    (P(NS_ONLY), "database", INGRESS, "backend", "TCP", 6401, DEFAULT_DENY, None),
    (P(NS_ONLY), "database", INGRESS, "coredns", "TCP", 6379, DEFAULT_DENY, None),   # namespace not selected
    (P(SEPARATE_PEERS), "database", INGRESS, "coredns", "TCP", 1, DEFAULT_DENY, None),
    (P(SEPARATE_PEERS), "database", INGRESS, "frontend", "TCP", 1, ALLOWED, "db-or"),
    # a podSelector without namespaceSelector is the policy's namespace (data): shop's backend is not in it
    (P(SEPARATE_PEERS.replace("{namespaceSelector: {matchLabels: {team: shop}}}, ", "")), "database",
     INGRESS, "backend", "TCP", 1, DEFAULT_DENY, None),
    (P(NAMED_PORT), "backend", INGRESS, "frontend", "TCP", 8080, DEFAULT_DENY, None),  # unresolved name
    (P(CILIUM_BACKEND), "backend", INGRESS, "frontend", "TCP", 8080, ALLOWED, "backend-l7"),
    (P(CILIUM_BACKEND), "backend", INGRESS, "intruder", "TCP", 8080, EXPLICIT_DENY, "backend-l7"),
    (P(CILIUM_BACKEND, ALLOW_ALL_INGRESS_SHOP), "backend", INGRESS, "intruder", "TCP", 8080, EXPLICIT_DENY,
     "backend-l7"),
    (P(CILIUM_BACKEND), "backend", INGRESS, "frontend", "TCP", 22, DEFAULT_DENY, None),
    (P(CILIUM_EGRESS), "frontend", EGRESS, WORLD, "TCP", 80, ALLOWED, "fe-out"),
    (P(CILIUM_EGRESS), "frontend", EGRESS, WORLD, "UDP", 80, ALLOWED, "fe-out"),       # protocol ANY
    (P(CILIUM_EGRESS), "frontend", EGRESS, PeerInfo(kind="world", ip="1.2.3.4", names=("example.com",)),
     "TCP", 80, DEFAULT_DENY, None),                                                    # * is one label
    (P(CILIUM_EGRESS), "frontend", EGRESS, "coredns", "UDP", 53, ALLOWED, "fe-out"),
    (P(CILIUM_EGRESS), "frontend", EGRESS, HOST, "TCP", 22, ALLOWED, "fe-out"),
    (P(CILIUM_EGRESS), "frontend", EGRESS, WORLD_OTHER, "TCP", 443, ALLOWED, "fe-out"),
    (P(CILIUM_EGRESS), "frontend", EGRESS, PeerInfo(kind="world", ip="203.0.113.5"), "TCP", 443,
     DEFAULT_DENY, None),                                                               # except
    (P(CILIUM_EGRESS), "frontend", EGRESS, "backend", "TCP", 22, EXPLICIT_DENY, "fe-out"),  # [{}] = namespace
    (P(CILIUM_EGRESS), "frontend", EGRESS, "database", "TCP", 22, DEFAULT_DENY, None),
    (P(CILIUM_EMPTY_RULE), "database", INGRESS, "backend", "TCP", 6379, DEFAULT_DENY, None),
    (P(CILIUM_ENTITY_CLUSTER), "database", INGRESS, "backend", "TCP", 6379, ALLOWED, "cluster-only"),
    (P(CILIUM_ENTITY_CLUSTER), "database", INGRESS, HOST, "TCP", 6379, ALLOWED, "cluster-only"),
    (P(CILIUM_ENTITY_CLUSTER), "database", INGRESS, WORLD, "TCP", 6379, DEFAULT_DENY, None),
]


@pytest.mark.parametrize("policies,subject,direction,peer,proto,port,reason,name", CASES)
def test_decide(policies, subject, direction, peer, proto, port, reason, name):
    peer = PEERS[peer] if isinstance(peer, str) else peer
    d = decide(policies, PEERS[subject], direction, peer, proto, port)
    assert d.reason == reason
    assert (d.policy.name if d.policy else None) == name
    if reason in (DEFAULT_DENY, EXPLICIT_DENY, ALLOWED):
        assert d.selecting, "a decision under policy names the selecting policies"


def test_named_port_resolves_on_the_destination_pod():
    import dataclasses
    backend = dataclasses.replace(PEERS["backend"], named_ports={"http": ("TCP", 8080)})
    policies = P(NAMED_PORT)
    assert decide(policies, backend, INGRESS, PEERS["frontend"], "TCP", 8080).reason == ALLOWED
    assert decide(policies, backend, INGRESS, PEERS["frontend"], "UDP", 8080).reason == DEFAULT_DENY


@pytest.mark.parametrize("request_,l7_denied", [
    (L7Request(http_method="GET", http_path="/api/users"), False),
    (L7Request(http_method="GET", http_path="/api/users/42"), False),
    (L7Request(http_method="POST", http_path="/api/users"), True),
    (L7Request(http_method="GET", http_path="/api/orders"), True),
])
def test_http_rules_are_audited_not_enforced(request_, l7_denied):
    d = decide(P(CILIUM_BACKEND), PEERS["backend"], INGRESS, PEERS["frontend"], "TCP", 8080, request_)
    assert d.reason == ALLOWED and d.l7_denied is l7_denied


def test_flow_replay_checks_both_ends_and_skips_replies():
    policies = P(BACKEND_FROM_FRONTEND, EGRESS_ONLY)
    v = evaluate_flow(make_flow("frontend", "backend", 8080), policies)
    assert v.ingress.reason == ALLOWED and v.egress.reason == DEFAULT_DENY and not v.allowed
    v = evaluate_flow(make_flow("frontend", "database", 6379), policies)
    assert v.allowed and v.ingress.reason == NO_POLICY
    assert evaluate_flow(make_flow("backend", "frontend", 40000, reply=True), policies) is None
    v = evaluate_flow(make_flow("frontend", "world", 443, dst_ip="198.51.100.7"), policies)
    assert v.allowed and v.ingress is None
    v = evaluate_flow(make_flow("frontend", "backend", 8080, http=("POST", "/api/users")), P(CILIUM_BACKEND))
    assert v.allowed and v.l7_denied
    v = evaluate_flow(make_flow("frontend", "world", 80, names=("api.example.com",)), P(CILIUM_EGRESS))
    assert v.egress.reason == ALLOWED
