"""World traffic: reserved:world identity and the name learnt from the cluster DNS answer; perf-buffer
losses reach gRPC clients as LostEvent."""

from __future__ import annotations

import threading
import time

import grpc
import pytest

from collector.identity import RESERVED_WORLD
from lab.testbed.wait import wait_for
from proto.flow import flow_pb2
from proto.observer import observer_pb2, observer_pb2_grpc
from tests.collector.datapath.helpers import wait_listening

pytestmark = pytest.mark.root

WORLD = {
    "namespaces": {"shop": {}, "kube-system": {}},
    "pods": [
        {"name": "coredns", "namespace": "kube-system", "labels": {"k8s-app": "kube-dns"}, "clusterDNS": True},
        {"name": "client", "namespace": "shop", "labels": {"app": "client"}},
    ],
    "world": [{"name": "example-api", "dnsNames": ["api.example.com"],
               "command": "exec $FLOWSCOPE_PYTHON -m http.server 80"}],
}


def test_world_destination_carries_reserved_identity_and_dns_name(lab_factory, collector_factory):
    lab = lab_factory(WORLD)
    run = collector_factory(lab)
    world = lab.pod("example-api")
    wait_listening(lab, "example-api", 80)
    out = lab.exec("client", ["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "http://api.example.com/"])
    assert out.stdout == "200", out
    dns = run.wait_for(lambda f: f.l7.HasField("dns") and f.l7.type == flow_pb2.RESPONSE
                       and f.l7.dns.query == "api.example.com." and world.ipv4 in f.l7.dns.ips)
    assert dns and dns[0].source.labels == list(
        next(e for e in lab.endpoints() if e.pod_name == lab.pod("coredns").name).hubble_labels())
    syn = run.wait_for(lambda f: f.IP.destination == world.ipv4 and f.l4.TCP.flags.SYN and not f.l4.TCP.flags.ACK)
    assert syn, "the connection to the world host is observed on the client's device"
    flow = syn[0]
    assert (flow.destination.identity, list(flow.destination.labels)) == (RESERVED_WORLD, ["reserved:world"])
    assert list(flow.destination_names) == ["api.example.com"]
    assert flow.source.pod_name == lab.pod("client").name and flow.traffic_direction == flow_pb2.EGRESS
    http = run.wait_for(lambda f: f.l7.HasField("http") and f.l7.type == flow_pb2.REQUEST)
    assert http and http[0].interface.name == lab.pod("client").device, \
        "payload of a connection to a non-pod server is captured on the client's device"


@pytest.mark.parametrize("reader", ["bulk", "bcc"])  # bcc's: what machines without TSO read with
def test_perf_buffer_losses_become_lost_events(lab_factory, collector_factory, reader):
    lab = lab_factory({"pods": [{"name": "a"}, {"name": "b", "command": "exec $FLOWSCOPE_PYTHON -m http.server 8080"}]})
    run = collector_factory(lab, aggregation="none", perf_pages=1, perf_reader=reader)
    slow = threading.Event()
    run.collector.observer.hooks.append(lambda flow: slow.is_set() and time.sleep(0.002))
    wait_listening(lab, "b", 8080)
    slow.set()  # a slow consumer and a one-page buffer: the kernel must drop events
    lab.exec("a", ["ping", "-f", "-c", "3000", lab.pod("b").ipv4], check=True)
    slow.clear()
    stats = run.collector.datapath.stats
    seen = None

    def reader_done() -> bool:
        nonlocal seen
        counts, seen = seen, (stats.events, stats.lost)
        return counts == seen

    wait_for(reader_done, 20, "the reader done (events and lost unchanged for 0.5 s)", interval=0.5)
    lost = stats.lost
    assert lost > 0 and stats.events > 0
    with grpc.insecure_channel(f"127.0.0.1:{run.collector.grpc_port}") as channel:
        stub = observer_pb2_grpc.ObserverStub(channel)
        responses = list(stub.GetFlows(observer_pb2.GetFlowsRequest(number=100000), timeout=30))
    events = [r.lost_events for r in responses if r.HasField("lost_events")]
    assert events and all(e.source == flow_pb2.PERF_EVENT_RING_BUFFER for e in events)
    assert sum(e.num_events_lost for e in events) == lost
