"""Renders GetFlowsResponses the way `hubble observe` does: compact, dict, table, json/jsonpb.

compact:  `Jan  2 15:04:05.000: default/frontend:43210 (ID:256) -> default/backend:8080 (ID:257)
           to-endpoint FORWARDED (TCP Flags: SYN)` — replies are printed with the ends swapped and `<-`,
          so the client stays on the left; an unknown direction gets `<>`.
json/jsonpb: one GetFlowsResponse per line in proto3 JSON with the .proto field names
          (`{"flow":{...},"node_name":"...","time":"..."}`), what tools reading Hubble flow logs expect.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TextIO

from google.protobuf import timestamp_pb2

from common import hubble_json
from flowscope import timeformat
from common.flows import l4_ports
from proto.flow import flow_pb2
from proto.observer import observer_pb2
from proto.relay import relay_pb2

OUTPUTS = ("compact", "dict", "json", "jsonpb", "table")

RESERVED_IDENTITIES = {0: "unknown", 1: "host", 2: "world", 3: "unmanaged", 4: "health", 5: "init",
                       6: "remote-node", 7: "kube-apiserver", 8: "ingress", 9: "world-ipv4",
                       10: "world-ipv6"}
TRACE_POINTS = {0: "to-endpoint", 1: "to-proxy", 2: "to-host", 3: "to-stack", 4: "to-overlay",
                5: "from-endpoint", 6: "from-proxy", 7: "from-host", 8: "from-stack", 9: "from-overlay",
                10: "from-network", 11: "to-network"}
# flow.TraceObservationPoint enum -> Cilium's trace sub type, for flows that set only the enum.
_POINT_SUBTYPE = {flow_pb2.TO_ENDPOINT: 0, **{p: p for p in range(1, 12)}}
# Cilium's drop reason texts (pkg/monitor/api), keyed by drop reason number (= drop event sub type).
DROP_REASONS = {
    130: "Invalid source mac", 131: "Invalid destination mac", 132: "Invalid source ip",
    133: "Policy denied", 134: "Invalid packet", 135: "CT: Truncated or invalid header",
    136: "CT: Missing TCP ACK flag", 137: "CT: Unknown L4 protocol", 139: "Unsupported L3 protocol",
    140: "Missed tail call", 141: "Error writing to packet", 142: "Unknown L4 protocol",
    143: "Unknown ICMPv4 code", 144: "Unknown ICMPv4 type", 145: "Unknown ICMPv6 code",
    146: "Unknown ICMPv6 type", 147: "Error retrieving tunnel key", 151: "Stale or unroutable IP",
    181: "Policy denied by denylist", 189: "Authentication required", 196: "TTL exceeded",
}
POLICY_MATCH = {0: "none", 1: "L3-Only", 2: "L3-L4", 3: "L4-Only", 4: "all", 5: "L3-Proto", 6: "Proto-Only"}
POLICY_ACTIONS = {flow_pb2.DROPPED: "DENIED", flow_pb2.ERROR: "DENIED", flow_pb2.AUDIT: "AUDITED"}
EVENT_DROP, EVENT_TRACE, EVENT_POLICY_VERDICT, EVENT_CAPTURE = 1, 4, 5, 3
TCP_FLAG_ORDER = ("SYN", "ACK", "RST", "FIN", "PSH", "URG", "ECE", "CWR", "NS")


@dataclass(frozen=True)
class Style:
    """How the human formats render: hubble's --time-format, and --color (ANSI colours as hubble's
    fatih/color: hosts cyan, ports yellow, identities magenta, verdicts green/red/yellow)."""

    time_format: str = "StampMilli"
    color: bool = False

    def paint(self, code: int, text: str) -> str:
        return f"\x1b[{code}m{text}\x1b[0m" if self.color else text


PLAIN = Style()
CYAN, YELLOW, MAGENTA, GREEN, RED = 36, 33, 35, 32, 31
_VERDICT_COLORS = {flow_pb2.FORWARDED: GREEN, flow_pb2.REDIRECTED: GREEN, flow_pb2.DROPPED: RED,
                   flow_pb2.ERROR: RED, flow_pb2.AUDIT: YELLOW, flow_pb2.TRACED: YELLOW,
                   flow_pb2.TRANSLATED: YELLOW}


def format_time(stamp: timestamp_pb2.Timestamp, style: Style = PLAIN) -> str:
    """In the style's time format, UTC (StampMilli: 'Jan  2 15:04:05.000')."""
    return timeformat.format_time(stamp.seconds, stamp.nanos, style.time_format)


def _flow_time(flow: flow_pb2.Flow, style: Style) -> str:
    return format_time(flow.time, style) if flow.HasField("time") else "N/A"  # hubble: an unset time


def format_identity(identity: int) -> str:
    if identity in RESERVED_IDENTITIES:
        return f"({RESERVED_IDENTITIES[identity]})"
    if identity < 256:
        return f"({identity})"
    return f"(ID:{identity})"


def host(flow: flow_pb2.Flow, source: bool, style: Style = PLAIN) -> str:
    """pod as ns/pod, else service, else DNS names, else the IP; then :port (IPv6 in brackets)."""
    ep = flow.source if source else flow.destination
    service = flow.source_service if source else flow.destination_service
    names = flow.source_names if source else flow.destination_names
    ip = flow.IP.source if source else flow.IP.destination
    port = (l4_ports(flow) or (0, 0))[0 if source else 1]
    if ep.pod_name:
        name = f"{ep.namespace}/{ep.pod_name}" if ep.namespace else ep.pod_name
    elif service.name:
        name = f"{service.namespace}/{service.name}" if service.namespace else service.name
    elif names:
        name = ",".join(names)
    else:
        name = f"[{ip}]" if ":" in ip and port else ip
    return style.paint(CYAN, f"{name}:{style.paint(YELLOW, str(port))}" if port else name)


def endpoint_text(flow: flow_pb2.Flow, source: bool, style: Style = PLAIN) -> str:
    ep = flow.source if source else flow.destination
    return f"{host(flow, source, style)} {style.paint(MAGENTA, format_identity(ep.identity))}"


def _drop_reason(flow: flow_pb2.Flow) -> str:
    sub = flow.event_type.sub_type
    if sub in DROP_REASONS:
        return DROP_REASONS[sub]
    if flow.drop_reason_desc in DROP_REASONS:
        return DROP_REASONS[flow.drop_reason_desc]
    if flow.drop_reason_desc:
        return flow_pb2.DropReason.Name(flow.drop_reason_desc)
    return flow.kernel_drop_reason or str(sub)


def flow_type(flow: flow_pb2.Flow) -> str:
    """The TYPE column: l7 record and type (http-request), else from the monitor event type."""
    if flow.HasField("l7"):
        record = flow.l7.WhichOneof("record") or "l7"
        return f"{record}-{flow_pb2.L7FlowType.Name(flow.l7.type).lower()}"
    kind = flow.event_type.type
    if kind == EVENT_TRACE:
        sub = _POINT_SUBTYPE.get(flow.trace_observation_point, flow.event_type.sub_type)
        return TRACE_POINTS.get(sub, str(sub))
    if kind == EVENT_DROP:
        return _drop_reason(flow)
    if kind == EVENT_POLICY_VERDICT:
        direction = flow_pb2.TrafficDirection.Name(flow.traffic_direction)
        return f"policy-verdict:{POLICY_MATCH.get(flow.policy_match_type, 'none')} {direction}"
    if kind == EVENT_CAPTURE:
        return "capture"
    return "UNKNOWN"


def verdict_text(flow: flow_pb2.Flow, style: Style = PLAIN) -> str:
    """The VERDICT column; policy-verdict events say what the policy decided (ALLOWED, DENIED, AUDITED)."""
    if flow.event_type.type == EVENT_POLICY_VERDICT:
        text = POLICY_ACTIONS.get(flow.verdict, "ALLOWED")
    else:
        text = flow_pb2.Verdict.Name(flow.verdict) if flow.verdict in flow_pb2.Verdict.values() \
            else str(flow.verdict)
    return style.paint(_VERDICT_COLORS[flow.verdict], text) if flow.verdict in _VERDICT_COLORS else text


def tcp_flags_text(flags: flow_pb2.TCPFlags) -> str:
    return ", ".join(name for name in TCP_FLAG_ORDER if getattr(flags, name))


def summary(flow: flow_pb2.Flow) -> str:
    """The flow's Summary, or (for flows without one) what Hubble's parser would have said."""
    if flow.Summary:
        return flow.Summary
    record = flow.l7.WhichOneof("record") if flow.HasField("l7") else None
    if record == "http":
        http = flow.l7.http
        if flow.l7.type == flow_pb2.RESPONSE:
            return (f"{http.protocol} {http.code} {flow.l7.latency_ns // 1_000_000}ms "
                    f"({http.method} {http.url})")
        return f"{http.protocol} {http.method} {http.url}"
    if record == "dns":
        dns = flow.l7.dns
        if flow.l7.type == flow_pb2.RESPONSE:
            ips = ",".join(dns.ips)
            return f'DNS Answer "{ips}" TTL: {dns.ttl} ({dns.query} {",".join(dns.qtypes)})'
        return f"DNS Query {dns.query} {','.join(dns.qtypes)}"
    kind = flow.l4.WhichOneof("protocol")
    if kind == "TCP":
        return f"TCP Flags: {tcp_flags_text(flow.l4.TCP.flags)}"
    if kind in ("ICMPv4", "ICMPv6"):
        icmp = getattr(flow.l4, kind)
        return f"{kind} type {icmp.type} code {icmp.code}"
    return kind or ""


def _ends(flow: flow_pb2.Flow, style: Style = PLAIN) -> tuple[str, str, str]:
    """(left, arrow, right): replies swap the ends so the connection's client stays on the left."""
    src, dst = endpoint_text(flow, True, style), endpoint_text(flow, False, style)
    if not flow.HasField("is_reply"):
        return src, "<>", dst
    if flow.is_reply.value:
        return dst, "<-", src
    return src, "->", dst


def format_compact(response: observer_pb2.GetFlowsResponse, node_name: bool = False,
                   style: Style = PLAIN) -> str:
    kind = response.WhichOneof("response_types")
    if kind == "lost_events":
        lost = response.lost_events
        return (f"EVENTS LOST: {flow_pb2.LostEventSource.Name(lost.source)} CPU({lost.cpu.value}) "
                f"{lost.num_events_lost}")
    if kind == "node_status":
        status = response.node_status
        text = f"{relay_pb2.NodeState.Name(status.state_change)}: {', '.join(status.node_names)}"
        return f"{text} ({status.message})" if status.message else text
    flow = response.flow
    node = f" [{flow.node_name or response.node_name}]" if node_name else ""
    left, arrow, right = _ends(flow, style)
    return (f"{_flow_time(flow, style)}{node}: {left} {arrow} {right} {flow_type(flow)} "
            f"{verdict_text(flow, style)} ({summary(flow)})")


def format_dict(response: observer_pb2.GetFlowsResponse, node_name: bool = False, style: Style = PLAIN) -> str:
    if response.WhichOneof("response_types") != "flow":
        return format_compact(response)
    flow = response.flow
    rows = [("TIMESTAMP", _flow_time(flow, style))]
    if node_name:
        rows.append(("NODE", flow.node_name or response.node_name))
    rows += [("SOURCE", host(flow, True, style)), ("DESTINATION", host(flow, False, style)),
             ("TYPE", flow_type(flow)), ("VERDICT", verdict_text(flow, style)), ("SUMMARY", summary(flow))]
    return "\n".join(f"{key:>11}: {value}" for key, value in rows)


def table_row(response: observer_pb2.GetFlowsResponse, node_name: bool = False, style: Style = PLAIN) -> list[str]:
    """Never coloured: hubble turns colours off for its tab-aligned table."""
    flow = response.flow
    row = [_flow_time(flow, Style(style.time_format))]
    if node_name:
        row.append(flow.node_name or response.node_name)
    return row + [host(flow, True), host(flow, False), flow_type(flow),
                  verdict_text(flow), summary(flow)]


class Printer:
    """Writes responses to `out` in one of OUTPUTS; `close()` flushes what a table still holds.
    Lost events and node status go to `err` in the human formats (as hubble does), in-band in JSON."""

    def __init__(self, output: str, out: TextIO, err: TextIO, node_name: bool = False,
                 flowscope_fields: bool = False, style: Style = PLAIN) -> None:
        if output not in OUTPUTS:
            raise ValueError(f"unknown output {output!r}, expected one of {', '.join(OUTPUTS)}")
        self.output, self.out, self.err, self.node_name = output, out, err, node_name
        self.flowscope_fields, self.style = flowscope_fields, style
        self._rows: list[list[str]] = []
        self._widths: list[int] = []
        self._count = 0

    def write(self, response: observer_pb2.GetFlowsResponse) -> None:
        if self.output in ("json", "jsonpb"):
            self.out.write(hubble_json.response_line(response, self.flowscope_fields) + "\n")
            return
        if response.WhichOneof("response_types") != "flow":
            self.err.write(format_compact(response) + "\n")
            return
        if self.output == "compact":
            self.out.write(format_compact(response, self.node_name, self.style) + "\n")
        elif self.output == "dict":
            if self._count:
                self.out.write("------------\n")
            self.out.write(format_dict(response, self.node_name, self.style) + "\n")
        else:
            self._rows.append(table_row(response, self.node_name, self.style))
        self._count += 1

    def flush(self) -> None:
        """Writes buffered table rows (the header once; columns only ever widen, so a followed
        table stays aligned as far as it can) and flushes `out`."""
        if self._rows:
            header = ["TIMESTAMP"] + (["NODE"] if self.node_name else []) + [
                "SOURCE", "DESTINATION", "TYPE", "VERDICT", "SUMMARY"]
            rows = self._rows if self._widths else [header] + self._rows
            self._widths = [max([len(r[i]) for r in rows] + self._widths[i:i + 1])
                            for i in range(len(header) - 1)]
            for r in rows:
                cells = [c.ljust(w + 3) for c, w in zip(r, self._widths)] + [r[-1]]
                self.out.write("".join(cells).rstrip() + "\n")
            self._rows = []
        self.out.flush()

    close = flush
