"""Policies from the Kubernetes API, against the stand-in API server (tests/fixtures/kube_api.py:
no Kubernetes API server can run on this machine; the client under test is the real one)."""


from collector.k8s import load_api_client
from enforcer.k8s_policies import KubernetesPolicySource
from lab.testbed.wait import wait_for


def network_policy(name, ns, port, app="backend"):
    return {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
            "metadata": {"name": name, "namespace": ns, "uid": "x", "resourceVersion": "1",
                         "creationTimestamp": "2026-11-25T10:00:00Z", "generation": 1},
            "spec": {"podSelector": {"matchLabels": {"app": app}}, "policyTypes": ["Ingress"],
                     "ingress": [{"from": [{"podSelector": {"matchLabels": {"app": "frontend"}}}],
                                  "ports": [{"protocol": "TCP", "port": port}]}]}}


def cilium_policy(name, ns):
    return {"apiVersion": "cilium.io/v2", "kind": "CiliumNetworkPolicy",
            "metadata": {"name": name, "namespace": ns},
            "spec": {"endpointSelector": {"matchLabels": {"app": "frontend"}},
                     "egress": [{"toFQDNs": [{"matchName": "api.example.com"}]}]}}


class Changes:
    """The source's callback: keeps the latest policy list it handed over."""

    def __init__(self):
        self.latest = []

    def __call__(self, policies):
        self.latest = policies

    def until(self, predicate, timeout=10):
        try:
            wait_for(lambda: predicate(self.latest), timeout, "the policies to match")
        except AssertionError:
            raise AssertionError(f"policies never matched: {[p.name for p in self.latest]}") from None


def start(kube_api, tmp_path, changes):
    api_client = load_api_client(kube_api.kubeconfig(str(tmp_path / "kubeconfig")))
    source = KubernetesPolicySource(api_client, changes, watch_timeout_seconds=5)
    source.start()
    assert source.wait_synced(10)
    return source


def names(policies):
    return sorted(p.name for p in policies)


def test_network_policies_follow_the_api(kube_api, tmp_path):
    kube_api.apply(network_policy("allow-frontend", "shop", 8080))
    changes = Changes()
    source = start(kube_api, tmp_path, changes)
    try:
        changes.until(lambda ps: names(ps) == ["allow-frontend"])
        assert [r.ports[0].port for r in changes.latest[0].ingress] == [8080]
        kube_api.apply(network_policy("allow-frontend", "shop", 9090))
        changes.until(lambda ps: [r.ports[0].port for r in ps[0].ingress] == [9090])
        kube_api.apply(network_policy("db", "data", 6379, app="database"))
        changes.until(lambda ps: names(ps) == ["allow-frontend", "db"])
        kube_api.delete("NetworkPolicy", "allow-frontend", "shop")
        changes.until(lambda ps: names(ps) == ["db"])
        assert [i.resource for i in source.informers] == ["networkpolicies"], "no Cilium CRD here"
    finally:
        kube_api.drop_watches()
        source.stop()


def test_invalid_object_is_named_and_skipped(kube_api, tmp_path):
    bad = network_policy("bad-port", "shop", 70000)
    kube_api.apply(bad)
    kube_api.apply(network_policy("good", "shop", 8080))
    changes = Changes()
    source = start(kube_api, tmp_path, changes)
    try:
        changes.until(lambda ps: names(ps) == ["good"])
        (reason,) = source.invalid.values()
        assert "kubernetes:NetworkPolicy/shop/bad-port" in reason and "port" in reason
    finally:
        kube_api.drop_watches()
        source.stop()


def test_cilium_policies_come_from_the_crd_when_installed(kube_api, tmp_path):
    kube_api.crds.add("ciliumnetworkpolicies.cilium.io")
    kube_api.apply(cilium_policy("frontend-egress", "shop"))
    changes = Changes()
    source = start(kube_api, tmp_path, changes)
    try:
        changes.until(lambda ps: names(ps) == ["frontend-egress"])
        assert changes.latest[0].kind == "CiliumNetworkPolicy"
    finally:
        kube_api.drop_watches()
        source.stop()
