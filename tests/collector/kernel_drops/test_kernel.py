"""Drops provoked in lab pods on the real kernel show up as DROPPED flows with the kernel's reason and
the sending pod's labels."""

import secrets
import subprocess
import time

import pytest

from common.endpoints import EndpointCache
from collector.kernel_drops import KernelDrops
from lab.testbed.wait import wait_for
from proto.flow import flow_pb2

pytestmark = pytest.mark.root

TOPOLOGY = {"namespaces": {"shop": {"labels": {"team": "shop"}}}, "pods": [
    {"name": "client", "namespace": "shop", "labels": {"app": "client"}},
    {"name": "server", "namespace": "shop", "labels": {"app": "server"}}]}

# A UDP receiver that never reads, with the smallest receive buffer: its queue fills at once.
STUCK_RECEIVER = """
import socket, time
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1)
s.bind(("0.0.0.0", 7070))
print("ready", flush=True)
time.sleep(30)
"""


@pytest.fixture
def drops(lab_factory):
    shop = lab_factory(TOPOLOGY)
    cache = EndpointCache()
    cache.replace(shop.endpoints())
    flows: list[flow_pb2.Flow] = []
    kd = KernelDrops(flows.append, endpoints=cache, node_name="node-a")
    kd.start()
    yield shop, kd, flows
    kd.stop()


def collect(kd, flows, predicate, what: str, timeout: float = 5.0) -> list[flow_pb2.Flow]:
    """The drop flows matching `predicate`, reading the kernel's events until there is one."""

    def matching() -> list[flow_pb2.Flow]:
        kd.poll(50)
        return [f for f in flows if predicate(f)]

    try:
        return wait_for(matching, timeout, what, interval=0)
    except AssertionError as err:
        raise AssertionError(f"{err} (got {[f.Summary for f in flows]})") from None


def collect_for(kd, flows, predicate, seconds: float) -> list[flow_pb2.Flow]:
    """The drop flows matching `predicate` after reading the kernel's events for `seconds`."""
    end = time.monotonic() + seconds
    while time.monotonic() < end:  # not a wait: the check is that nothing comes in that time
        kd.poll(50)
    return [f for f in flows if predicate(f)]


def test_udp_to_a_closed_port_is_a_no_socket_drop(drops):
    shop, kd, flows = drops
    client, server = shop.pod("client"), shop.pod("server")
    for addr in (server.ipv4, server.ipv6):
        shop.exec("client", ["bash", "-c", f"echo x > /dev/udp/{addr}/9999"], check=True)
        found = collect(kd, flows, lambda f: f.IP.destination == addr and f.l4.UDP.destination_port == 9999,
                        f"a drop flow for UDP to {addr}:9999")
        flow = found[0]
        assert flow.verdict == flow_pb2.DROPPED and flow.kernel_drop_reason == "NO_SOCKET"
        assert flow.drop_reason_desc == flow_pb2.SOCKET_LOOKUP_FAILED and flow.event_type.type == 1
        assert flow.IP.source in (client.ipv4, client.ipv6)
        assert flow.source.pod_name == "client" and flow.source.namespace == "shop"
        assert "k8s:app=client" in flow.source.labels
        assert "k8s:io.cilium.k8s.namespace.labels.team=shop" in flow.source.labels
        assert flow.destination.pod_name == "server"


def test_full_socket_receive_queue_drops_with_socket_rcvbuff(drops):
    shop, kd, flows = drops
    server = shop.pod("server")
    receiver = shop.popen("server", ["python3", "-c", STUCK_RECEIVER], stdout=subprocess.PIPE, text=True)
    try:
        assert receiver.stdout.readline().strip() == "ready"
        shop.exec("client", ["python3", "-c", "import socket; s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n"
                             f"for _ in range(200): s.sendto(b'x' * 1000, ('{server.ipv4}', 7070))"], check=True)
        found = collect(kd, flows, lambda f: f.l4.UDP.destination_port == 7070, "a drop flow for UDP to :7070")
    finally:
        receiver.kill()
        receiver.wait()
    assert {f.kernel_drop_reason for f in found} == {"SOCKET_RCVBUFF"}
    assert all(f.source.pod_name == "client" and "k8s:app=client" in f.source.labels for f in found)


def test_packet_to_an_address_without_route_is_dropped_with_its_reason(drops):
    shop, kd, flows = drops
    # A unique unreachable IPv6 route on the host (like a CNI's route for an unassigned pod block).
    target = f"2001:db8:dead::{secrets.randbelow(0xffff):x}"
    subprocess.run(["ip", "-6", "route", "add", "unreachable", f"{target}/128"], check=True)
    try:
        shop.exec("client", ["bash", "-c", f"echo x > /dev/udp/{target}/53"])
        found = collect(kd, flows, lambda f: f.IP.destination == target, f"a drop flow to {target}")
    finally:
        subprocess.run(["ip", "-6", "route", "del", "unreachable", f"{target}/128"], check=False)
    flow = found[0]
    assert flow.kernel_drop_reason == "IP_INNOROUTES" and flow.drop_reason_desc == flow_pb2.UNROUTABLE
    assert flow.source.pod_name == "client" and flow.destination.labels == ["reserved:world"]
    assert flow.traffic_direction == flow_pb2.EGRESS


def test_excluded_reasons_are_filtered_in_the_kernel(lab_factory):
    """The same UDP-to-a-closed-port drop, with NO_SOCKET excluded: the program reports nothing."""
    shop = lab_factory(TOPOLOGY)
    cache = EndpointCache()
    cache.replace(shop.endpoints())
    flows: list[flow_pb2.Flow] = []
    kd = KernelDrops(flows.append, endpoints=cache, node_name="node-a", exclude=("NO_SOCKET",))
    kd.start()
    try:
        server = shop.pod("server").ipv4
        shop.exec("client", ["bash", "-c", f"echo x > /dev/udp/{server}/9999"], check=True)
        assert not collect_for(kd, flows, lambda f: f.kernel_drop_reason == "NO_SOCKET", 2.0)
    finally:
        kd.stop()
