"""The applied-policy registry and PolicyNames, the collector's id -> policy lookup."""

from enforcer.datapath.registry import AUDIT, ENFORCE, PolicyNames, Registry
from enforcer.policy import parse_text

POLICY = """apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: backend-ingress, namespace: shop, labels: {team: shop}}
spec:
  podSelector: {matchLabels: {app: backend}}
"""


def test_ids_are_stable_revisions_move_and_names_are_found_at_once(tmp_path, monkeypatch):
    monkeypatch.setenv("FLOWSCOPE_ENFORCER_STATE_DIR", str(tmp_path))
    clock = [100.0]
    names = PolicyNames("/sys/fs/bpf/test-registry", clock=lambda: clock[0])
    assert names.policy_for_id(1) is None
    [policy] = parse_text(POLICY)
    registry = Registry.load("/sys/fs/bpf/test-registry")
    applied = registry.put(policy, ENFORCE)
    registry.save()
    # Same instant: an unknown id re-reads the registry instead of waiting for the next periodic check.
    found = names.policy_for_id(applied.id)
    assert (found.name, found.namespace, found.kind, found.revision, list(found.labels)) == (
        "backend-ingress", "shop", "NetworkPolicy", 1, ["k8s:team=shop"])
    again = Registry.load("/sys/fs/bpf/test-registry")
    assert again.put(policy, ENFORCE).revision == 1, "re-applying the same policy changes nothing"
    changed = again.put(parse_text(POLICY.replace("app: backend", "app: api"))[0], AUDIT)
    assert changed.id == applied.id and changed.revision == 2 and again.audit_keys() == {policy.key}
    again.save()
    clock[0] += 1.5
    assert names.policy_for_id(applied.id).revision == 2
    assert [p.subject.selector.match_labels for p in again.parsed()] == [(("app", "api"),)]
