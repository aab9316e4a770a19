"""The Kubernetes endpoint source against a stand-in API server (tests/fixtures/kube_api.py).

No Kubernetes API server can run on this machine; the stand-in speaks the API server's JSON and its
list/watch protocol, and the client under test is the real kubernetes Python client.
"""

import time

import pytest

from common.endpoints import EndpointCache
from collector.k8s import KubernetesEndpointSource, KubernetesError, load_api_client
from lab.testbed.wait import wait_for


def namespace(name, **labels):
    return {"kind": "Namespace", "apiVersion": "v1", "metadata": {"name": name, "labels": labels}}


def pod(name, ns, ip, labels, owner=None, node="node-a", host_network=False, phase="Running"):
    metadata = {"name": name, "namespace": ns, "labels": labels}
    if owner:
        metadata["ownerReferences"] = [{"apiVersion": "apps/v1", "kind": owner[0], "name": owner[1],
                                        "uid": "u-" + owner[1], "controller": True}]
    return {"kind": "Pod", "apiVersion": "v1", "metadata": metadata,
            "spec": {"nodeName": node, "serviceAccountName": "sa-" + ns, "hostNetwork": host_network,
                     "containers": [{"name": "main", "image": "example"}]},
            "status": {"phase": phase, "podIP": ip, "podIPs": [{"ip": ip}]}}


def service(name, ns, cluster_ip):
    return {"kind": "Service", "apiVersion": "v1", "metadata": {"name": name, "namespace": ns},
            "spec": {"clusterIP": cluster_ip, "clusterIPs": [cluster_ip],
                     "ports": [{"port": 80, "protocol": "TCP"}]}}


def endpoint_slice(name, ns, service_name, addresses):
    return {"kind": "EndpointSlice", "apiVersion": "discovery.k8s.io/v1",
            "metadata": {"name": name, "namespace": ns,
                         "labels": {"kubernetes.io/service-name": service_name}},
            "addressType": "IPv4",
            "endpoints": [{"addresses": [a]} for a in addresses]}


def node(name, **labels):
    return {"kind": "Node", "apiVersion": "v1", "metadata": {"name": name, "labels": labels}}


def devices(ip):
    return {"10.0.0.10": ("lxc-front", 11), "10.0.0.11": ("lxc-back", 12)}.get(ip)


@pytest.fixture
def cluster(kube_api):
    kube_api.apply(namespace("shop", team="retail"))
    kube_api.apply(node("node-a", zone="z1"))
    kube_api.apply(pod("frontend-7d9f-abcde", "shop", "10.0.0.10",
                       {"app": "frontend", "pod-template-hash": "7d9f"},
                       owner=("ReplicaSet", "frontend-7d9f")))
    kube_api.apply(pod("db-0", "shop", "10.0.0.11", {"app": "db"}, owner=("StatefulSet", "db"),
                       node="node-b"))
    kube_api.apply(pod("backup-28000000-x1", "shop", "10.0.0.12", {"app": "backup"},
                       owner=("Job", "backup-28000000")))
    kube_api.apply(pod("agent", "shop", "192.168.1.1", {"app": "agent"}, host_network=True))
    kube_api.apply(service("frontend", "shop", "10.96.0.20"))
    kube_api.apply(endpoint_slice("frontend-abc", "shop", "frontend", ["10.0.0.10"]))
    return kube_api


@pytest.fixture
def source(cluster, tmp_path):
    api_client = load_api_client(cluster.kubeconfig(str(tmp_path / "kubeconfig")))
    cache = EndpointCache(node_name="node-a")
    src = KubernetesEndpointSource(api_client, cache, node_name="node-a", cluster="prod",
                                   device_lookup=devices, watch_timeout_seconds=5)
    src.start()
    assert src.wait_synced(10), [i.stats for i in src.informers]
    yield src
    cluster.drop_watches()  # end open watches so the informer threads exit promptly
    src.stop()


def test_initial_list_builds_endpoints_with_workloads_services_and_devices(source):
    cache = source.cache
    front = wait_for(lambda: cache.endpoint_by_ip("10.0.0.10"), what="the frontend pod in the cache")
    assert (front.namespace, front.pod_name) == ("shop", "frontend-7d9f-abcde")
    assert (front.workload_name, front.workload_kind) == ("frontend", "Deployment")
    assert (front.device, front.ifindex, front.node_name) == ("lxc-front", 11, "node-a")
    assert "k8s:io.cilium.k8s.namespace.labels.team=retail" in front.hubble_labels()
    assert "k8s:io.cilium.k8s.policy.serviceaccount=sa-shop" in front.hubble_labels()
    assert "k8s:io.cilium.k8s.policy.cluster=prod" in front.hubble_labels()
    assert not any("pod-template-hash" in label for label in front.identity_labels())
    db = cache.endpoint_by_ip("10.0.0.11")
    assert (db.workload_name, db.workload_kind, db.device) == ("db", "StatefulSet", "")
    backup = cache.endpoint_by_ip("10.0.0.12")
    assert (backup.workload_name, backup.workload_kind) == ("backup", "CronJob")
    assert cache.endpoint_by_ip("192.168.1.1") is None, "host-network pods are the host"
    assert cache.service_by_ip("10.96.0.20").name == "frontend"
    assert source.service_for_backend_ip("10.0.0.10").name == "frontend"
    assert source.node_labels("node-a") == {"zone": "z1"}
    assert [e.pod_name for e in cache.local_endpoints()] == ["frontend-7d9f-abcde"]


def test_watch_follows_adds_relabels_and_deletes(source, kube_api):
    cache = source.cache
    kube_api.apply(pod("cart-1", "shop", "10.0.0.13", {"app": "cart"}))
    wait_for(lambda: cache.endpoint_by_ip("10.0.0.13"), what="the added pod in the cache")
    kube_api.apply(pod("cart-1", "shop", "10.0.0.13", {"app": "cart", "tier": "gold"}))
    wait_for(lambda: cache.endpoint_by_ip("10.0.0.13").labels.get("tier") == "gold", what="the pod's new label")
    kube_api.apply(namespace("shop", team="payments"))
    wait_for(lambda: cache.endpoint_by_ip("10.0.0.10").namespace_labels == {"team": "payments"},
             what="the namespace's new labels on its pod")
    kube_api.delete("Pod", "cart-1", "shop")
    wait_for(lambda: cache.endpoint_by_ip("10.0.0.13") is None, what="the deleted pod gone from the cache")
    kube_api.apply(pod("db-0", "shop", "10.0.0.11", {"app": "db"}, phase="Succeeded"))
    wait_for(lambda: cache.endpoint_by_ip("10.0.0.11") is None, what="the finished pod gone from the cache")
    kube_api.delete("Service", "frontend", "shop")
    wait_for(lambda: cache.service_by_ip("10.96.0.20") is None, what="the deleted service gone from the cache")


def test_gone_in_mid_watch_relists_and_converges(source, kube_api):
    pods = next(i for i in source.informers if i.resource == "pods")
    lists_before = pods.stats.lists
    kube_api.apply(pod("late-1", "shop", "10.0.0.14", {"app": "late"}))
    kube_api.expire_history("Pod")
    kube_api.delete("Pod", "frontend-7d9f-abcde", "shop")
    kube_api.expire_history("Pod")
    wait_for(lambda: pods.stats.gone >= 1 and pods.stats.lists > lists_before, what="a 410 Gone and a relist")
    wait_for(lambda: source.cache.endpoint_by_ip("10.0.0.14") is not None, what="the pod added before the relist")
    wait_for(lambda: source.cache.endpoint_by_ip("10.0.0.10") is None, what="the pod deleted before the relist gone")


def test_dropped_connection_resumes_from_last_version_without_relisting(source, kube_api):
    pods = next(i for i in source.informers if i.resource == "pods")
    lists_before = pods.stats.lists
    kube_api.drop_watches()
    wait_for(lambda: pods.stats.watches >= 2, what="a second watch")
    kube_api.apply(pod("while-away", "shop", "10.0.0.15", {"app": "away"}))
    wait_for(lambda: source.cache.endpoint_by_ip("10.0.0.15") is not None,
             what="the pod added while the watch was down")
    assert pods.stats.lists == lists_before
    assert pods.stats.watches >= 2
    assert any("resourceVersion=" in r and "watch=true" in r for r in kube_api.requests)


def test_forbidden_watch_reports_permission_and_keeps_known_labels(source, kube_api):
    pods = next(i for i in source.informers if i.resource == "pods")
    kube_api.forbid("Pod")
    kube_api.expire_history("Pod")  # force a relist, which is now forbidden
    wait_for(lambda: "403" in pods.stats.last_error, what="the 403 reported")
    assert "no permission to list/watch pods" in pods.stats.last_error
    assert source.cache.endpoint_by_ip("10.0.0.10").pod_name == "frontend-7d9f-abcde"
    errors_then = pods.stats.errors
    time.sleep(1.0)
    assert pods.stats.errors <= errors_then + 3, "backoff must prevent a busy retry loop"


def test_bad_kubeconfig_is_a_clear_error(tmp_path):
    with pytest.raises(KubernetesError, match="file not found"):
        load_api_client(str(tmp_path / "missing"))
    bad = tmp_path / "bad"
    bad.write_text("apiVersion: v1\nkind: Config\nclusters: 5\n")
    with pytest.raises(KubernetesError, match="invalid"):
        load_api_client(str(bad))
