"""`flowscope policy check`: replay stored flows against policies and report what they would deny,
grouped by workload and rule — a preview of a policy against history before it is applied."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterable

from common.flows import l4_kind, l4_ports
from enforcer.evaluate import EXPLICIT_DENY, Decision, evaluate_flow
from enforcer.policy.model import Policy
from proto.flow import flow_pb2


@dataclass
class Group:
    flows: int = 0
    first_ns: int = 0
    last_ns: int = 0
    examples: list[str] = field(default_factory=list)


@dataclass
class CheckReport:
    checked: int = 0                                       # connection requests replayed
    would_deny: dict[tuple[str, str, str], Group] = field(default_factory=dict)     # (workload, dir, why)
    l7_would_deny: dict[tuple[str, str, str], Group] = field(default_factory=dict)

    @property
    def denied_flows(self) -> int:
        return sum(g.flows for g in self.would_deny.values())

    @property
    def l7_denied_flows(self) -> int:
        return sum(g.flows for g in self.l7_would_deny.values())


def check_flows(flows: Iterable[flow_pb2.Flow], policies: list[Policy], report: CheckReport | None = None,
                max_examples: int = 3) -> CheckReport:
    report = report or CheckReport()
    for flow in flows:
        verdict = evaluate_flow(flow, policies)
        if verdict is None:
            continue
        report.checked += 1
        for d in verdict.decisions:
            if not d.allowed:
                _add(report.would_deny, _key(flow, d), flow, max_examples)
            elif d.l7_denied:
                _add(report.l7_would_deny, _key(flow, d, l7=True), flow, max_examples)
    return report


def _key(flow: flow_pb2.Flow, d: Decision, l7: bool = False) -> tuple[str, str, str]:
    ep = flow.destination if d.direction == "ingress" else flow.source
    workload = f"{ep.namespace}/{ep.workloads[0].name if ep.workloads else ep.pod_name}"
    if l7:
        why = f"no HTTP/DNS rule of {d.policy.kind} {d.policy.namespace}/{d.policy.name} {d.rule.path} matches"
    elif d.reason == EXPLICIT_DENY:
        why = f"denied by {d.policy.kind} {d.policy.namespace}/{d.policy.name} {d.rule.path}"
    else:
        names = ", ".join(f"{p.namespace}/{p.name}" for p in d.selecting)
        why = f"default deny: selected by {names}, no rule allows"
    return workload, d.direction, why


def _add(groups: dict, key, flow: flow_pb2.Flow, max_examples: int) -> None:
    g = groups.setdefault(key, Group())
    t = flow.time.seconds * 1_000_000_000 + flow.time.nanos
    g.flows += 1
    g.first_ns = t if not g.first_ns else min(g.first_ns, t)
    g.last_ns = max(g.last_ns, t)
    if len(g.examples) < max_examples:
        example = _describe(flow)
        if example not in g.examples:
            g.examples.append(example)


def _describe(flow: flow_pb2.Flow) -> str:
    def end(ep: flow_pb2.Endpoint, ip: str, names) -> str:
        if ep.pod_name:
            return f"{ep.namespace}/{ep.pod_name}"
        return names[0] if names else ip
    which = l4_kind(flow) or "?"
    ports = l4_ports(flow)
    port = ports[1] if ports else ""
    summary = f" {flow.l7.http.method} {flow.l7.http.url}" if flow.l7.HasField("http") else ""
    return (f"{end(flow.source, flow.IP.source, flow.source_names)} -> "
            f"{end(flow.destination, flow.IP.destination, flow.destination_names)}:{port} {which}{summary}")


def render(report: CheckReport) -> str:
    lines = [f"{report.checked} connections replayed: {report.denied_flows} would be denied, "
             f"{report.l7_denied_flows} allowed at L3/L4 but not by their L7 rules (audit only)"]
    for title, groups in (("would deny", report.would_deny), ("L7 would deny (not enforced)", report.l7_would_deny)):
        for (workload, direction, why), g in sorted(groups.items(), key=lambda kv: -kv[1].flows):
            lines.append(f"{title}: {workload} {direction}: {g.flows} flows — {why}")
            lines.extend(f"    e.g. {e}" for e in g.examples)
    return "\n".join(lines)
