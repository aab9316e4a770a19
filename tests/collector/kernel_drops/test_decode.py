"""Kernel drop events -> flows, without the kernel: crafted events, the running kernel's BTF, and the
errors users see when BTF or the tracepoint is missing."""

import socket

import pytest

from collector.btf import BtfError, load_btf
from common.endpoints import Endpoint, EndpointCache
from collector.kernel_drops import (DROP_EVENT_FORMAT, DropDecoder, concerns_node, KernelDrops, KernelDropsError,
                                    program_cflags, reason_names, tracepoint_offsets)
from proto.flow import flow_pb2

CLIENT = Endpoint(namespace="shop", pod_name="frontend-1", ips=("10.244.0.2", "fd00:10:244::2"),
                  labels={"app": "frontend"}, workload_name="frontend", workload_kind="Deployment")
SERVER = Endpoint(namespace="data", pod_name="database-0", ips=("10.244.0.3", "fd00:10:244::3"),
                  labels={"app": "database"})


def event(src, dst, reason, proto=socket.IPPROTO_UDP, sport=40000, dport=9999, ifindex=7):
    family = 6 if ":" in src else 4
    af = socket.AF_INET6 if family == 6 else socket.AF_INET
    pad = lambda a: socket.inet_pton(af, a).ljust(16, b"\0")
    return DROP_EVENT_FORMAT.pack(123, 0xffffffff81000000, pad(src), pad(dst), reason, ifindex, 0, 60,
                                  sport, dport, family, proto)


@pytest.fixture(scope="module")
def btf():
    return load_btf()


@pytest.fixture
def decoder(btf):
    cache = EndpointCache()
    cache.replace([CLIENT, SERVER])
    return DropDecoder(reason_names(btf), cache, node_name="node-a")


def test_no_socket_drop_has_both_ends_reason_and_hubble_fields(btf, decoder):
    no_socket = {v: k for k, v in reason_names(btf).items()}["NO_SOCKET"]
    flow = decoder.decode(event("10.244.0.2", "10.244.0.3", no_socket))
    assert flow.verdict == flow_pb2.DROPPED
    assert flow.kernel_drop_reason == "NO_SOCKET"
    assert flow.drop_reason_desc == flow_pb2.SOCKET_LOOKUP_FAILED
    assert (flow.event_type.type, flow.event_type.sub_type) == (1, flow_pb2.SOCKET_LOOKUP_FAILED)
    assert (flow.source.pod_name, flow.destination.pod_name) == ("frontend-1", "database-0")
    assert "k8s:app=frontend" in flow.source.labels and flow.source.identity >= 256
    assert flow.source.workloads[0].name == "frontend"
    assert (flow.l4.UDP.source_port, flow.l4.UDP.destination_port) == (40000, 9999)
    assert flow.traffic_direction == flow_pb2.INGRESS
    assert flow.node_name == "node-a" and flow.interface.index == 7 and flow.uuid
    assert flow.Summary == "UDP dropped by the kernel (NO_SOCKET)"


def test_ipv6_to_the_world_and_unmapped_reason(btf, decoder):
    reasons = {v: k for k, v in reason_names(btf).items()}
    flow = decoder.decode(event("fd00:10:244::2", "2001:db8::1", reasons["IP_INNOROUTES"], socket.IPPROTO_TCP))
    assert flow.IP.ipVersion == flow_pb2.IPv6 and flow.IP.destination == "2001:db8::1"
    assert flow.destination.labels == ["reserved:world"] and flow.destination.identity == 2
    assert flow.drop_reason_desc == flow_pb2.UNROUTABLE and flow.traffic_direction == flow_pb2.EGRESS
    assert flow.l4.TCP.destination_port == 9999
    flow = decoder.decode(event("10.244.0.2", "10.244.0.3", reasons["QDISC_DROP"], socket.IPPROTO_ICMP, 8, 0))
    assert flow.kernel_drop_reason == "QDISC_DROP" and flow.drop_reason_desc == flow_pb2.DROP_REASON_UNKNOWN
    assert (flow.l4.ICMPv4.type, flow.l4.ICMPv4.code) == (8, 0)


def test_malformed_events_are_typed_errors(decoder):
    with pytest.raises(KernelDropsError, match="expected 72"):
        decoder.decode(b"\0" * 10)
    bad_family = bytearray(event("10.244.0.2", "10.244.0.3", 3))
    bad_family[-4] = 9
    with pytest.raises(KernelDropsError, match="family 9"):
        decoder.decode(bytes(bad_family))


@pytest.mark.root  # tracefs is readable by root only
def test_offsets_come_from_the_running_kernel(btf):
    flags = dict(f[2:].split("=") for f in program_cflags(btf))
    # The 6.1 headers would say otherwise; these are the running kernel's layout, all distinct.
    skb = {k: int(v) for k, v in flags.items() if k.startswith("SKB_")}
    assert len(set(skb.values())) == len(skb)
    assert int(flags["REASON_MAX_IGNORED"]) == btf.enum("skb_drop_reason")["SKB_DROP_REASON_NOT_SPECIFIED"]
    assert set(tracepoint_offsets()) == {"skbaddr", "location", "protocol", "reason"}


def test_missing_btf_and_tracepoint_give_one_line_errors(tmp_path):
    with pytest.raises(BtfError, match=r"nothere: kernel BTF not found; .*CONFIG_DEBUG_INFO_BTF=y"):
        KernelDrops(lambda f: None, btf_path=str(tmp_path / "nothere")).start()
    (tmp_path / "junk").write_bytes(b"not btf at all, really not" * 2)
    with pytest.raises(BtfError, match="not a BTF file"):
        load_btf(str(tmp_path / "junk"))
    with pytest.raises(KernelDropsError, match="tracepoint skb:kfree_skb not found under .*mount tracefs"):
        tracepoint_offsets([str(tmp_path)])


def test_each_node_reports_the_drops_of_its_own_pods(btf):
    reasons = {v: k for k, v in reason_names(btf).items()}
    on_a = Endpoint(namespace="shop", pod_name="a", ips=("10.244.0.2",), node_name="node-a")
    on_b = Endpoint(namespace="shop", pod_name="b", ips=("10.244.0.3",), node_name="node-b")
    caches = {}
    for node in ("node-a", "node-b"):
        caches[node] = EndpointCache(node)
        caches[node].replace([on_a, on_b])
    decode = DropDecoder(reasons, caches["node-a"]).decode
    a_to_b = decode(event("10.244.0.2", "10.244.0.3", reasons["NO_SOCKET"]))
    a_to_world = decode(event("10.244.0.2", "192.0.2.9", reasons["NO_SOCKET"]))
    world = decode(event("192.0.2.8", "192.0.2.9", reasons["NO_SOCKET"]))
    assert [concerns_node(f, caches["node-a"]) for f in (a_to_b, a_to_world, world)] == [False, True, False]
    assert [concerns_node(f, caches["node-b"]) for f in (a_to_b, a_to_world, world)] == [True, False, False]
    assert concerns_node(world, caches["node-a"], only_known=False)
