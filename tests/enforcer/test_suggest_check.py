"""suggest from flows built like the collector's, then check the same flows against the suggestion:
nothing of the normal traffic is denied, the intruder is; selectors are stable and exact."""

import pytest

from enforcer.check import check_flows, render
from enforcer.evaluate import evaluate_flow
from enforcer.policy import parse_text
from enforcer.suggest import CILIUM, K8S, SuggestOptions, generalise_path, observe, suggest
from tests.enforcer.helpers import PEERS, make_flow


def normal_traffic():
    flows = []
    for i in range(4):
        t = 1_700_000_000 + i
        flows += [
            make_flow("frontend", "backend", 8080, http=("GET", f"/api/users/{i + 100}"), time_s=t),
            make_flow("frontend", "backend2", 8080, http=("GET", "/api/orders"), time_s=t),
            make_flow("frontend", "coredns", 53, "UDP", dns_query="backend.shop.svc.cluster.local.", time_s=t),
            make_flow("backend", "coredns", 53, "UDP", time_s=t),
            make_flow("backend2", "coredns", 53, "UDP", time_s=t),
            make_flow("backend", "database", 6379, time_s=t),
            make_flow("backend2", "database", 6379, time_s=t),
            make_flow("frontend", "world", 80, dst_ip="198.51.100.10", names=("api.example.com",), time_s=t),
            make_flow("backend", "frontend", 40001, reply=True, time_s=t),
        ]
    return flows


def intruder_traffic():
    return [make_flow("intruder", "backend", 8080), make_flow("intruder", "database", 6379)]


@pytest.fixture(scope="module", params=[K8S, CILIUM])
def suggested(request):
    obs = observe(normal_traffic())
    suggestions = suggest(obs, SuggestOptions(format=request.param, l7=True, known_pods=list(PEERS.values())))
    text = "---\n".join(s.yaml() for s in suggestions)
    return request.param, suggestions, parse_text(text, "suggested.yaml")


def test_one_policy_per_workload_with_stable_exact_selectors(suggested):
    fmt, suggestions, policies = suggested
    assert {(s.namespace, s.workload) for s in suggestions} == {
        ("shop", "frontend"), ("shop", "backend"), ("data", "database"), ("kube-system", "coredns")}
    assert all(not s.warnings for s in suggestions)
    by_name = {p.name: p for p in policies}
    backend = by_name["backend-least-privilege"]
    selector_key = "endpointSelector" if fmt == CILIUM else "podSelector"
    doc = next(s.document for s in suggestions if s.workload == "backend")
    assert doc["spec"][selector_key] == {"matchLabels": {"app": "backend"}}   # never pod-template-hash
    selected = {name for name, peer in PEERS.items() if backend.selects(peer)}
    assert selected == {"backend", "backend2"}


def test_dns_egress_uses_the_dns_pods_actual_labels(suggested):
    fmt, suggestions, _ = suggested
    doc = next(s.document for s in suggestions if s.workload == "frontend")
    text = str(doc)
    assert "'k8s-app': 'kube-dns'" in text and "53" in text
    if fmt == CILIUM:
        assert "'toFQDNs': [{'matchName': 'api.example.com'}]" in text
        assert "'dns': [{'matchPattern': '*'}]" in text
    else:
        assert "198.51.100.10/32" in text


def test_every_rule_has_evidence(suggested):
    _, suggestions, _ = suggested
    backend = next(s for s in suggestions if s.workload == "backend")
    annotations = backend.document["metadata"]["annotations"]
    assert annotations["flowscope.io/evidence.ingress.0"].startswith("shop/frontend: 8 flows, first 2023-11-14")
    assert backend.yaml().startswith("# flowscope policy suggest: shop/backend (2 pods)")


def test_suggestion_allows_normal_traffic_and_denies_the_intruder(suggested):
    _, _, policies = suggested
    report = check_flows(normal_traffic(), policies)
    assert report.checked == 32 and report.denied_flows == 0, render(report)
    report = check_flows(intruder_traffic(), policies)
    assert report.denied_flows == 2    # each at the destination's ingress; the intruder's egress is free
    assert {k[0] for k in report.would_deny} == {"shop/backend", "data/database"}
    for v in map(lambda f: evaluate_flow(f, policies), intruder_traffic()):
        assert not v.allowed


def test_l7_rules_generalise_paths_and_audit_other_requests():
    obs = observe(normal_traffic())
    policies = parse_text("---\n".join(s.yaml() for s in suggest(obs, SuggestOptions(CILIUM, l7=True))))
    backend = next(p for p in policies if p.name == "backend-least-privilege")
    paths = {(h.method, h.path) for r in backend.ingress for h in r.http}
    assert paths == {("GET", "/api/users/[0-9]+"), ("GET", "/api/orders")}
    report = check_flows([make_flow("frontend", "backend", 8080, http=("DELETE", "/api/users/7"))], policies)
    assert report.denied_flows == 0 and report.l7_denied_flows == 1
    assert "L7 would deny (not enforced): shop/backend ingress: 1 flows" in render(report)


@pytest.mark.parametrize("path,expected", [
    ("/users/123", "/users/[0-9]+"),
    ("/users/123/orders/9?x=1", "/users/[0-9]+/orders/[0-9]+"),
    ("/v1/items/3f2a9c1e-1b2c-4d5e-8f90-123456789abc", "/v1/items/[0-9a-fA-F-]+"),
    ("/static/app.js", r"/static/app\.js"),
    ("/", "/"),
])
def test_generalise_path(path, expected):
    assert generalise_path(path) == expected


def test_check_groups_default_and_explicit_denies_by_workload_and_rule():
    policies = parse_text("""apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: db, namespace: data}
spec:
  endpointSelector: {matchLabels: {app: database}}
  ingress:
  - fromEndpoints: [{matchLabels: {app: backend, k8s:io.kubernetes.pod.namespace: shop}}]
  ingressDeny:
  - fromEndpoints: [{matchLabels: {app: intruder, k8s:io.kubernetes.pod.namespace: shop}}]
""")
    flows = normal_traffic() + intruder_traffic() + [make_flow("frontend", "database", 6379)]
    report = check_flows(flows, policies)
    text = render(report)
    assert report.denied_flows == 2
    assert "data/database ingress: 1 flows — denied by CiliumNetworkPolicy data/db spec.ingressDeny[0]" in text
    assert "data/database ingress: 1 flows — default deny: selected by data/db, no rule allows" in text
    assert "e.g. shop/frontend-7d9f-abcde -> data/database-0:6379 TCP" in text
