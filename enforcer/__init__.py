"""flowscope's enforcer: Kubernetes NetworkPolicy and CiliumNetworkPolicy (common subset) loaded, evaluated
on stored flows (`policy check`), suggested from observed traffic (`policy suggest`) and compiled into the
datapath's pinned policy maps (`policy apply`/`remove`/`mode`), enforced by bpf/policy.h in the TC programs.

L3/L4 rules are enforced in the kernel. L7 rules (rules.http, rules.dns) are NOT enforced: that needs a
proxy, which is out of scope; they are evaluated on the observed HTTP and DNS flows and reported as
would-deny by `policy check` (audit only).

Public pieces: enforcer.policy (model, loader), enforcer.evaluate (verdicts in Python), enforcer.suggest,
enforcer.check, enforcer.compile, enforcer.apply, enforcer.runtime.PolicyAgent (keeps the maps in step with
pods and DNS answers inside the collector), enforcer.datapath (PolicyMaps, PolicyNames).
"""
