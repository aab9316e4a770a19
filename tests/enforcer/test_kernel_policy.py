"""bpf/policy.h in the kernel (BPF_PROG_TEST_RUN) against maps written by enforcer.datapath."""

import pytest

from enforcer.datapath import PolicyMaps
from enforcer.datapath.maps import DIR_EGRESS, DIR_INGRESS, EP_AUDIT, EP_ENFORCE_INGRESS
from enforcer.datapath.ports import RULE_DENY
from enforcer.datapath.state import MapState, Rule, ip_slot, read_state, rules_to_slots, sync
from tests.enforcer.kernel_probe import KernelProbe

ALLOW, DENY, DENY_EXPLICIT = 0, 1, 2
TCP, UDP = 6, 17
EP, FRONTEND, OTHER = 300, 400, 500


@pytest.fixture(scope="module")
def kernel():
    maps = PolicyMaps.open(None)
    probe = KernelProbe(maps)
    state = MapState(
        endpoints={5: (EP, EP_ENFORCE_INGRESS, 99, 0), 6: (EP, EP_ENFORCE_INGRESS | EP_AUDIT, 99, 0)},
        ipcache={ip_slot("10.244.0.0/24"): FRONTEND, ip_slot("10.244.0.9/32"): OTHER,
                 ip_slot("fd00:10:244::/64"): FRONTEND},
        rules=rules_to_slots([
            Rule(EP, FRONTEND, DIR_INGRESS, TCP, 8080, 8080, policy_id=11),
            Rule(EP, FRONTEND, DIR_INGRESS, UDP, 30000, 32767, policy_id=12),
            Rule(EP, 0, DIR_INGRESS, TCP, 9000, 9100, RULE_DENY, policy_id=13),
            Rule(EP, FRONTEND, DIR_INGRESS, 0, policy_id=14),
            Rule(EP, OTHER, DIR_INGRESS, TCP, 8080, 8080, policy_id=15),
            Rule(EP, OTHER, DIR_INGRESS, TCP, 8080, 8080, RULE_DENY, policy_id=16),
        ]))
    sync(maps, state)
    yield maps, probe, state
    maps.close()


@pytest.mark.root
@pytest.mark.parametrize("ifindex,direction,peer,proto,port,action,policy_id,identity", [
    (5, DIR_INGRESS, "10.244.0.7", TCP, 8080, ALLOW, 11, FRONTEND),        # exact L3/L4 allow
    (5, DIR_INGRESS, "10.244.0.7", TCP, 22, ALLOW, 14, FRONTEND),          # L3-only allow (any proto)
    (5, DIR_INGRESS, "10.244.0.7", UDP, 31000, ALLOW, 12, FRONTEND),       # endPort range
    (5, DIR_INGRESS, "10.244.0.7", TCP, 9050, DENY_EXPLICIT, 13, FRONTEND),  # deny beats L3 allow
    (5, DIR_INGRESS, "10.244.0.9", TCP, 8080, DENY_EXPLICIT, 16, OTHER),   # deny beats same-key allow
    (5, DIR_INGRESS, "10.244.0.9", TCP, 80, DENY, 99, OTHER),              # longest prefix wins identity
    (5, DIR_INGRESS, "192.0.2.1", TCP, 8080, DENY, 99, 2),                 # unknown IP is world; default
                                                                            # deny names the selecting policy
    (5, DIR_INGRESS, "fd00:10:244::5", TCP, 8080, ALLOW, 11, FRONTEND),    # IPv6 ipcache
    (5, DIR_EGRESS, "192.0.2.1", TCP, 80, ALLOW, 0, 2),                    # direction not enforced
    (7, DIR_INGRESS, "192.0.2.1", TCP, 80, ALLOW, 0, 2),                   # endpoint not selected
    (5, DIR_INGRESS, "fe80::1", 58, 0, ALLOW, 0, 2),                       # neighbour discovery
    (5, DIR_INGRESS, "ff02::2", 58, 0, ALLOW, 0, 2),                       # router solicitation
    (5, DIR_INGRESS, "fe80::1", TCP, 80, DENY, 99, 2),                     # only ICMPv6 is exempt
])
def test_verdicts(kernel, ifindex, direction, peer, proto, port, action, policy_id, identity):
    _, probe, _ = kernel
    verdict = probe.check(ifindex, direction, peer, proto, port)
    assert (verdict.action, verdict.policy_id, verdict.remote_identity) == (action, policy_id, identity)
    assert verdict.audit == 0


@pytest.mark.root
def test_audit_endpoint_reports_the_deny_as_audit(kernel):
    _, probe, _ = kernel
    verdict = probe.check(6, DIR_INGRESS, "192.0.2.1", TCP, 8080)
    assert (verdict.action, verdict.audit) == (DENY, 1)


@pytest.mark.root
def test_sync_is_idempotent_and_removes_what_is_gone(kernel):
    maps, probe, state = kernel
    assert read_state(maps) == state
    assert sync(maps, state).written == 0
    smaller = MapState(endpoints=dict(state.endpoints), ipcache=dict(state.ipcache),
                       rules={k: v for k, v in state.rules.items() if v[1] != 14})
    stats = sync(maps, smaller)
    assert stats.deleted == 1 and stats.written == 0
    assert probe.check(5, DIR_INGRESS, "10.244.0.7", TCP, 22).action == DENY
    sync(maps, state)
