"""Policies compiled into the maps, checked in the kernel against the Python evaluation of the same
connections: the two halves must agree (including CIDR excepts, entities and explicit deny)."""

import dataclasses

import pytest

from collector.identity import IdentityAllocator
from enforcer.compile import CompileInput, compile_policies
from enforcer.datapath import PolicyMaps
from enforcer.datapath.maps import DIR_EGRESS, DIR_INGRESS, EP_AUDIT, EP_ENFORCE_EGRESS, EP_ENFORCE_INGRESS
from enforcer.datapath.state import sync
from enforcer.evaluate import decide
from enforcer.peers import from_endpoint
from enforcer.policy import EGRESS, INGRESS, PeerInfo, parse_text
from tests.enforcer.helpers import ENDPOINTS
from tests.enforcer.kernel_probe import KernelProbe

POLICIES = """apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: backend-ingress, namespace: shop}
spec:
  podSelector: {matchLabels: {app: backend}}
  ingress:
  - from: [{podSelector: {matchLabels: {app: frontend}}}]
    ports: [{port: 8080}, {port: 9000, endPort: 9100, protocol: UDP}]
---
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: fe-out, namespace: shop}
spec:
  endpointSelector: {matchLabels: {app: frontend}}
  egress:
  - toEndpoints: [{matchLabels: {k8s:io.kubernetes.pod.namespace: kube-system, k8s-app: kube-dns}}]
    toPorts: [{ports: [{port: "53", protocol: UDP}]}]
  - toEndpoints: [{matchLabels: {app: backend}}]
  - toCIDRSet: [{cidr: 198.51.100.0/24, except: [198.51.100.128/25]}]
    toPorts: [{ports: [{port: "80", protocol: TCP}]}]
  - toFQDNs: [{matchName: api.example.com}]
  - toEntities: [host]
  egressDeny:
  - toEndpoints: [{matchLabels: {app: backend}}]
    toPorts: [{ports: [{port: "22"}]}]
"""
IFINDEX = {"frontend": 10, "backend": 11, "backend2": 12, "database": 13, "coredns": 14, "intruder": 15}
ENDPOINTS_WITH_DEVICES = [dataclasses.replace(ep, ifindex=IFINDEX[name]) for name, ep in ENDPOINTS.items()]
HOST_IP = "10.244.0.1"
FQDN_IP = "203.0.113.7"


def compiled(audit=frozenset()):
    policies = parse_text(POLICIES)
    ids = {key: i + 100 for i, key in enumerate(dict.fromkeys(p.key for p in policies))}
    inp = CompileInput(policies, ENDPOINTS_WITH_DEVICES, ids, IdentityAllocator(), audit, frozenset(), (HOST_IP,),
                       {FQDN_IP: ("api.example.com",)})
    return policies, ids, compile_policies(inp)


def test_endpoint_flags_follow_selection():
    _, _, result = compiled(audit=frozenset({"NetworkPolicy/shop/backend-ingress"}))
    eps = result.state.endpoints
    assert eps[11][1] == eps[12][1] == EP_ENFORCE_INGRESS | EP_AUDIT
    assert eps[10][1] == EP_ENFORCE_EGRESS
    assert eps[11][2:] == (100, 0) and eps[10][2:] == (0, 101)   # the policy a default deny names
    assert 13 not in eps and 14 not in eps and 15 not in eps
    assert eps[11][0] == eps[12][0] == IdentityAllocator().identity_for(ENDPOINTS["backend"].identity_labels())
    assert result.selected["shop/backend-55c-x1"] == ["NetworkPolicy/shop/backend-ingress"]


@pytest.fixture(scope="module")
def kernel():
    policies, ids, result = compiled()
    maps = PolicyMaps.open(None)
    sync(maps, result.state)
    yield policies, KernelProbe(maps)
    maps.close()


PEERS = {name: from_endpoint(ep) for name, ep in ENDPOINTS.items()}
WORLD = {"198.51.100.10": PeerInfo(kind="world", ip="198.51.100.10"),
         "198.51.100.200": PeerInfo(kind="world", ip="198.51.100.200"),
         FQDN_IP: PeerInfo(kind="world", ip=FQDN_IP, names=("api.example.com",)),
         "192.0.2.1": PeerInfo(kind="world", ip="192.0.2.1"),
         HOST_IP: PeerInfo(kind="host", ip=HOST_IP)}


@pytest.mark.root
@pytest.mark.parametrize("subject,direction,peer,proto,port", [
    ("backend", INGRESS, "frontend", "TCP", 8080), ("backend2", INGRESS, "frontend", "TCP", 8080),
    ("backend", INGRESS, "frontend", "UDP", 9050), ("backend", INGRESS, "frontend", "UDP", 9101),
    ("backend", INGRESS, "intruder", "TCP", 8080), ("backend", INGRESS, "database", "TCP", 8080),
    ("backend", INGRESS, "192.0.2.1", "TCP", 8080), ("database", INGRESS, "intruder", "TCP", 6379),
    ("frontend", EGRESS, "coredns", "UDP", 53), ("frontend", EGRESS, "coredns", "TCP", 53),
    ("frontend", EGRESS, "backend", "TCP", 8080), ("frontend", EGRESS, "backend", "TCP", 22),
    ("frontend", EGRESS, "database", "TCP", 6379), ("frontend", EGRESS, "198.51.100.10", "TCP", 80),
    ("frontend", EGRESS, "198.51.100.200", "TCP", 80), ("frontend", EGRESS, "198.51.100.10", "TCP", 443),
    ("frontend", EGRESS, FQDN_IP, "TCP", 443), ("frontend", EGRESS, "192.0.2.1", "TCP", 80),
    ("frontend", EGRESS, HOST_IP, "TCP", 10250),
])
def test_kernel_agrees_with_python(kernel, subject, direction, peer, proto, port):
    policies, probe = kernel
    peer_info = PEERS.get(peer) or WORLD[peer]
    expected = decide(policies, PEERS[subject], direction, peer_info, proto, port)
    kernel_dir = DIR_INGRESS if direction == INGRESS else DIR_EGRESS
    got = probe.check(IFINDEX[subject], kernel_dir, peer_info.ip, {"TCP": 6, "UDP": 17}[proto], port)
    assert got.action == {"no-policy": 0, "allowed": 0, "default-deny": 1, "explicit-deny": 2}[expected.reason]


def test_named_ports_resolve_on_the_selected_pod_or_warn():
    policies = parse_text("""apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: named, namespace: shop}
spec:
  podSelector: {matchLabels: {app: backend}}
  ingress: [{ports: [{port: http}]}]
""")
    ids = {policies[0].key: 7}
    named = {"shop/backend-55c-x1": {"http": ("TCP", 8080)}}
    result = compile_policies(CompileInput(policies, ENDPOINTS_WITH_DEVICES, ids, named_ports=named))
    assert {(slot[3], slot[4], slot[5]) for slot in result.state.rules} == {(6, 8080, 16)}
    assert any("named port 'http' is not known" in w for w in result.warnings), "backend2 has no such port"
