"""The relay finds collectors as pods of the collector DaemonSet, through the stand-in Kubernetes API
server (tests/fixtures/kube_api.py: no API server can run here; the kubernetes client is real)."""


import pytest

from collector.k8s import load_api_client
from relay.k8s_discovery import KubernetesPeers, PodSelectorError, parse_pod_selector
from relay.node import Peer
from lab.testbed.wait import wait_for


def collector_pod(name, node, ip, phase="Running"):
    return {"kind": "Pod", "apiVersion": "v1",
            "metadata": {"name": name, "namespace": "flowscope",
                         "labels": {"app.kubernetes.io/name": "flowscope-collector"}},
            "spec": {"nodeName": node, "containers": [{"name": "collector", "image": "flowscope"}]},
            "status": {"phase": phase, "podIP": ip}}


def test_collector_pods_become_peers_named_after_their_nodes(kube_api, tmp_path):
    kube_api.apply(collector_pod("collector-a", "node-a", "10.0.0.1"))
    kube_api.apply(collector_pod("collector-b", "node-b", "fd00::2", phase="Pending"))
    peers: dict[str, Peer] = {}
    removed: list[str] = []

    def add(peer):
        peers[peer.name] = peer

    def remove(name):
        removed.append(name)
        peers.pop(name, None)

    api_client = load_api_client(kube_api.kubeconfig(str(tmp_path / "kubeconfig")))
    watcher = KubernetesPeers(api_client, "flowscope", "app.kubernetes.io/name=flowscope-collector",
                              add, remove, port=4244, watch_timeout_seconds=5).start()
    try:
        wait_for(lambda: "node-a" in peers)
        assert peers == {"node-a": Peer("node-a", "10.0.0.1:4244")}
        kube_api.apply(collector_pod("collector-b", "node-b", "fd00::2"))
        wait_for(lambda: "node-b" in peers)
        assert peers["node-b"].address == "[fd00::2]:4244"
        kube_api.apply(collector_pod("collector-a", "node-a", "10.0.0.9"))  # restarted, new IP
        wait_for(lambda: peers.get("node-a") == Peer("node-a", "10.0.0.9:4244"))
        kube_api.delete("Pod", "collector-b", "flowscope")
        wait_for(lambda: "node-b" not in peers)
        assert removed == ["node-a", "node-b"]
    finally:
        kube_api.drop_watches()
        watcher.stop()
    assert any("labelSelector=app.kubernetes.io" in r for r in kube_api.requests)


def test_selector_must_name_namespace_and_labels():
    assert parse_pod_selector("flowscope/app=c") == ("flowscope", "app=c")
    with pytest.raises(PodSelectorError, match="NAMESPACE/LABEL_SELECTOR"):
        parse_pod_selector("app=c")
