"""PolicyAgent: toFQDNs rules open as DNS answers arrive, and new pods are enforced when they appear —
checked in the kernel on the maps the agent writes."""

import dataclasses
import shutil

import pytest

from enforcer.apply import apply_policies
from enforcer.datapath import PolicyMaps, forget
from enforcer.datapath.maps import DIR_EGRESS, DIR_INGRESS
from enforcer.policy import parse_text
from enforcer.runtime import PolicyAgent, load_fqdn_ips
from proto.flow import flow_pb2
from tests.enforcer.helpers import ENDPOINTS
from tests.enforcer.kernel_probe import KernelProbe
from tests.fixtures.datapath import unique_pin_dir

POLICY = """apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: fe-out, namespace: shop}
spec:
  endpointSelector: {matchLabels: {app: frontend}}
  egress:
  - toFQDNs: [{matchPattern: "*.example.com"}]
    toPorts: [{ports: [{port: "443", protocol: TCP}]}]
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: backend-in, namespace: shop}
spec:
  podSelector: {matchLabels: {app: backend}}
  ingress: [{from: [{podSelector: {matchLabels: {app: frontend}}}]}]
"""
IFINDEX = {"frontend": 30, "backend": 31, "backend2": 32}


def endpoints(*names):
    return [dataclasses.replace(ENDPOINTS[n], ifindex=IFINDEX[n]) for n in names]


def dns_answer(query: str, *ips: str) -> flow_pb2.Flow:
    flow = flow_pb2.Flow(Type=flow_pb2.L7)
    flow.l7.type = flow_pb2.RESPONSE
    flow.l7.dns.query = query + "."
    flow.l7.dns.ips.extend(ips)
    return flow


@pytest.fixture
def pinned():
    pin_dir = unique_pin_dir()
    maps = PolicyMaps.open(pin_dir)
    yield pin_dir, KernelProbe(maps)
    maps.close()
    shutil.rmtree(pin_dir, ignore_errors=True)
    forget(pin_dir)


@pytest.mark.root
def test_fqdn_rules_open_as_answers_arrive_and_new_pods_are_enforced(pinned):
    pin_dir, probe = pinned
    apply_policies(parse_text(POLICY), pin_dir, endpoints("frontend", "backend"), identity_state=None)
    agent = PolicyAgent(pin_dir)
    agent.on_endpoints(endpoints("frontend", "backend"))
    assert probe.check(30, DIR_EGRESS, "203.0.113.7", 6, 443).action == 1, "no answer yet: denied"

    agent.observe(dns_answer("other.org", "203.0.113.8"))
    assert agent.syncs == 1 and "203.0.113.8" not in load_fqdn_ips(pin_dir), "names no rule selects are ignored"
    agent.observe(dns_answer("api.example.com", "203.0.113.7"))
    assert agent.syncs == 2 and load_fqdn_ips(pin_dir) == {"203.0.113.7": ("api.example.com",)}
    assert probe.check(30, DIR_EGRESS, "203.0.113.7", 6, 443).action == 0
    assert probe.check(30, DIR_EGRESS, "203.0.113.7", 6, 80).action == 1
    agent.observe(dns_answer("api.example.com", "203.0.113.7"))
    assert agent.syncs == 2, "a known answer changes nothing"

    # A second backend replica appears after the policy was applied: enforced as soon as it is seen.
    assert probe.check(32, DIR_INGRESS, "10.244.0.66", 6, 8080).action == 0
    assert agent.on_endpoints(endpoints("frontend", "backend", "backend2"))
    assert probe.check(32, DIR_INGRESS, "10.244.0.66", 6, 8080).action == 1
    assert probe.check(32, DIR_INGRESS, ENDPOINTS["frontend"].ips[0], 6, 8080).action == 0
    assert not agent.on_endpoints(endpoints("frontend", "backend", "backend2"))
