"""Policy verdicts in Python, with the semantics the kernel implements (bpf/policy.h):

* a direction of an endpoint is unrestricted until some policy selects the endpoint for it;
* then a connection passes only if a rule of a selecting policy matches peer and port;
* a matching deny rule wins over every allow;
* L7 rules (HTTP, DNS) are not enforced (that needs a proxy): an L3/L4-allowed request that no L7 rule
  of the allowing rules matches is reported as an L7 would-deny (audit).

Used by `policy check` (replaying stored flows) and by the L7 audit of observed flows.
"""

from __future__ import annotations

import ipaddress
import urllib.parse
from dataclasses import dataclass, field

from enforcer.peers import from_flow_endpoint
from enforcer.policy.model import EGRESS, INGRESS, PeerInfo, Policy, Rule
from proto.flow import flow_pb2

NO_POLICY = "no-policy"
ALLOWED = "allowed"
DEFAULT_DENY = "default-deny"
EXPLICIT_DENY = "explicit-deny"


@dataclass(frozen=True)
class L7Request:
    """What L7 rules look at: an HTTP request or a DNS query."""

    http_method: str = ""
    http_path: str = ""
    http_host: str = ""
    http_headers: dict[str, str] = field(default_factory=dict, hash=False, compare=False)
    dns_query: str = ""

    @property
    def is_http(self) -> bool:
        return bool(self.http_method)


@dataclass(frozen=True)
class Decision:
    direction: str
    reason: str                           # NO_POLICY, ALLOWED, DEFAULT_DENY, EXPLICIT_DENY
    policy: Policy | None = None          # the allowing or explicitly denying policy
    rule: Rule | None = None
    selecting: tuple[Policy, ...] = ()    # policies selecting the endpoint for this direction
    l7_denied: bool = False               # allowed at L3/L4, but no L7 rule matches the request

    @property
    def allowed(self) -> bool:
        return self.reason in (NO_POLICY, ALLOWED)


def decide(policies: list[Policy], subject: PeerInfo, direction: str, peer: PeerInfo, protocol: str, port: int,
           l7: L7Request | None = None) -> Decision:
    """The verdict for a new connection of `subject` (the selected endpoint) with `peer` in `direction`.
    `protocol` is TCP/UDP/SCTP/ICMP..., `port` the destination port (0 for ICMP)."""
    selecting = tuple(p for p in policies if p.rules(direction) is not None and p.selects(subject))
    if not selecting:
        return Decision(direction, NO_POLICY)
    # Named ports name the destination pod's ports: the subject's on ingress, the peer's on egress.
    named = subject.named_ports if direction == INGRESS else peer.named_ports
    matching = [(p, r) for p in selecting for r in p.rules(direction) or ()
                if r.matches_peer(peer) and r.matches_port(protocol, port, named)]
    for policy, rule in matching:
        if rule.deny:
            return Decision(direction, EXPLICIT_DENY, policy, rule, selecting)
    allows = [(p, r) for p, r in matching if not r.deny]
    if not allows:
        return Decision(direction, DEFAULT_DENY, None, None, selecting)
    policy, rule = allows[0]
    if l7 is not None and all(r.has_l7 for _, r in allows):
        passing = [(p, r) for p, r in allows if _l7_matches(r, l7)]
        if not passing:
            return Decision(direction, ALLOWED, policy, rule, selecting, l7_denied=True)
        policy, rule = passing[0]
    return Decision(direction, ALLOWED, policy, rule, selecting)


def _l7_matches(rule: Rule, req: L7Request) -> bool:
    if req.is_http:
        return any(h.matches(req.http_method, req.http_path, req.http_host, req.http_headers) for h in rule.http)
    if req.dns_query:
        return any(d.matches(req.dns_query) for d in rule.dns)
    return False


@dataclass(frozen=True)
class FlowVerdict:
    egress: Decision | None       # of the source endpoint (None: source is not a pod)
    ingress: Decision | None      # of the destination endpoint

    @property
    def decisions(self) -> list[Decision]:
        return [d for d in (self.egress, self.ingress) if d is not None]

    @property
    def allowed(self) -> bool:
        return all(d.allowed for d in self.decisions)

    @property
    def l7_denied(self) -> bool:
        return any(d.l7_denied for d in self.decisions)


def flow_l4(flow: flow_pb2.Flow) -> tuple[str, int]:
    l4 = flow.l4
    which = l4.WhichOneof("protocol")
    if which in ("TCP", "UDP", "SCTP"):
        return which, getattr(l4, which).destination_port
    if which == "ICMPv4":
        return "ICMP", 0
    if which == "ICMPv6":
        return "ICMPV6", 0
    return "", 0


def flow_l7(flow: flow_pb2.Flow) -> L7Request | None:
    if not flow.HasField("l7") or flow.l7.type != flow_pb2.REQUEST:
        return None
    if flow.l7.HasField("http"):
        http = flow.l7.http
        url = urllib.parse.urlsplit(http.url)
        headers = {h.key.lower(): h.value for h in http.headers}
        return L7Request(http_method=http.method or "GET", http_path=url.path or "/",
                         http_host=url.netloc or headers.get("host", ""), http_headers=headers)
    if flow.l7.HasField("dns"):
        return L7Request(dns_query=flow.l7.dns.query)
    return None


def flow_peers(flow: flow_pb2.Flow) -> tuple[PeerInfo, PeerInfo]:
    """(client, server) of the connection a flow belongs to."""
    src = from_flow_endpoint(flow.source, flow.IP.source, flow.source_names)
    dst = from_flow_endpoint(flow.destination, flow.IP.destination, flow.destination_names)
    return src, dst


def is_connection_request(flow: flow_pb2.Flow) -> bool:
    """Replies never meet policy (conntrack passes them): only the originating direction is checked."""
    return not (flow.HasField("is_reply") and flow.is_reply.value)


def _link_local_icmpv6(protocol: str, destination: str) -> bool:
    """Neighbour discovery and router solicitation: exempt from policy, as in the kernel (bpf/policy.h)."""
    if protocol != "ICMPV6":
        return False
    try:
        ip = ipaddress.ip_address(destination)
    except ValueError:
        return False
    return ip.is_link_local or ip.is_multicast


def evaluate_flow(flow: flow_pb2.Flow, policies: list[Policy]) -> FlowVerdict | None:
    """The verdict policies give the connection of `flow`, or None for a reply or a non-IP flow."""
    if not is_connection_request(flow):
        return None
    protocol, port = flow_l4(flow)
    if not protocol or _link_local_icmpv6(protocol, flow.IP.destination):
        return None
    src, dst = flow_peers(flow)
    l7 = flow_l7(flow)
    egress = decide(policies, src, EGRESS, dst, protocol, port, l7) if src.kind == "endpoint" else None
    ingress = decide(policies, dst, INGRESS, src, protocol, port, l7) if dst.kind == "endpoint" else None
    return FlowVerdict(egress, ingress)
