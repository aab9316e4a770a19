"""The collector with `--endpoints kubernetes`: real lab traffic, labels from the (stand-in) API server.

No Kubernetes API server can run on this machine; tests/fixtures/kube_api.py speaks its JSON and
list/watch protocol to the real kubernetes client. Pod devices are found from pod IPs through the
host's routes, as on a veth-based CNI. The lab has no kube-proxy, so the "service" here is a cluster IP
given to the lab's world host: the collector names flows to it by that service.
"""

import shutil
import uuid

import pytest

from collector.agent import Collector, CollectorConfig
from collector.datapath import DatapathConfig
from tests.collector.datapath.helpers import TOPOLOGY, curl, wait_listening
from tests.collector.k8s.test_endpoint_source import namespace, node, pod, service
from lab.testbed.wait import wait_for

pytestmark = pytest.mark.root

LAB = {**TOPOLOGY, "world": [{"name": "payments", "command":
                               "exec $FLOWSCOPE_PYTHON -m http.server 80 --directory /usr/bin"}]}


@pytest.fixture
def cluster_lab(lab_factory, kube_api, tmp_path):
    lab = lab_factory(LAB)
    node_name = lab.state.pods[0].node
    client, server, world = lab.pod("client"), lab.pod("server"), lab.pod("payments")
    kube_api.apply(namespace("shop", team="retail"))
    kube_api.apply(namespace("data"))
    kube_api.apply(node(node_name, zone="z1"))
    kube_api.apply(pod("web-5d8f7c-x2x9z", "shop", client.ipv4, {"app": "web", "pod-template-hash": "5d8f7c"},
                       owner=("ReplicaSet", "web-5d8f7c"), node=node_name))
    kube_api.apply(pod("store-0", "data", server.ipv4, {"app": "store"}, owner=("StatefulSet", "store"),
                       node=node_name))
    kube_api.apply(service("payments", "billing", world.ipv4))
    pin_dir = f"/sys/fs/bpf/fsk8s-{uuid.uuid4().hex[:8]}"
    config = CollectorConfig(node_name=node_name, listen_address="127.0.0.1:0", unix_socket=None,
                             datapath=DatapathConfig(pin_dir=pin_dir, sync_interval_s=0.2),
                             identity_state=str(tmp_path / "identities.json"), endpoint_poll_s=0.2,
                             endpoint_source="kubernetes",
                             kubeconfig=kube_api.kubeconfig(str(tmp_path / "kubeconfig")))
    collector = Collector(config)
    flows = []
    collector.observer.hooks.append(flows.append)
    collector.start()
    yield lab, collector, flows
    kube_api.drop_watches()
    collector.stop(grace_s=0)
    shutil.rmtree(pin_dir, ignore_errors=True)


def test_flows_carry_pod_workload_service_and_node_from_the_api(cluster_lab):
    lab, collector, flows = cluster_lab
    wait_listening(lab, "server", 8080)
    assert len(collector.datapath.attached) == 2, "both pods' devices found from their IPs via routes"
    port = curl(lab, "client", f"http://{lab.pod('server').ipv4}:8080/")
    curl(lab, "client", f"http://{lab.pod('payments').ipv4}:80/")
    to_server = wait_for_flows(flows, lambda f: f.l4.TCP.source_port == port and f.l4.TCP.destination_port == 8080)
    flow = to_server[0]
    assert (flow.source.namespace, flow.source.pod_name) == ("shop", "web-5d8f7c-x2x9z")
    assert [(w.name, w.kind) for w in flow.source.workloads] == [("web", "Deployment")]
    assert "k8s:io.cilium.k8s.namespace.labels.team=retail" in flow.source.labels
    assert (flow.destination.pod_name, flow.destination.workloads[0].kind) == ("store-0", "StatefulSet")
    assert flow.node_name == collector.config.node_name
    to_service = wait_for_flows(flows, lambda f: f.l4.TCP.destination_port == 80 and f.destination_service.name)
    assert to_service[0].destination_service.namespace == "billing"
    assert to_service[0].destination_service.name == "payments"


def wait_for_flows(flows, match, timeout=10.0):
    return wait_for(lambda: [f for f in list(flows) if match(f)], timeout, "a matching flow")
