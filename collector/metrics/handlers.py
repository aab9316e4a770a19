"""One handler per Hubble metric name (`flow`, `drop`, `tcp`, `dns`, `httpV2`, ...): which flows it
counts and with which labels, following Cilium's pkg/hubble/metrics handlers so that dashboards and
alerts written for Hubble read flowscope's metrics unchanged.

A handler is built from its spec's options and a `make_vec(name, help, labelnames, histogram)`
factory, and exposes `process(flow)` (cheap: a few attribute reads and dict lookups) and `vecs`.
"""

from __future__ import annotations

from typing import Callable

from collector.identity import RESERVED_HOST
from collector.metrics.config import MetricsConfigError, MetricSpec
from collector.metrics.context import CONTEXT_OPTIONS, ContextOptions
from collector.l7 import grpc_status
from collector.metrics.series import SeriesVec
from proto.flow import flow_pb2

# Plain ints: attribute access on protobuf's enum wrappers goes through a slow __getattr__.
DROPPED = flow_pb2.DROPPED
PASSED = frozenset({flow_pb2.FORWARDED, flow_pb2.REDIRECTED})
L7_REQUEST = flow_pb2.REQUEST
L7_RESPONSE = flow_pb2.RESPONSE
# Cilium monitor message types carried in flow.event_type.type.
MSG_DROP, MSG_CAPTURE, MSG_TRACE, MSG_POLICY_VERDICT, MSG_L7 = 1, 3, 4, 5, 129
# event_type.sub_type of a trace event -> Hubble's observation point name.
TRACE_POINTS = ("to-endpoint", "to-proxy", "to-host", "to-stack", "to-overlay", "from-endpoint",
                "from-proxy", "from-host", "from-stack", "from-overlay", "from-network", "to-network")
# flow.policy_match_type -> name (Cilium's PolicyMatchType, lower-cased as Hubble emits it).
POLICY_MATCH = ("none", "l3-only", "l3-l4", "l4-only", "all", "l3-proto", "proto-only")
# ICMP type names as gopacket prints them, for the icmp_total{type} label.
ICMPV4_TYPES = {0: "EchoReply", 3: "DestinationUnreachable", 4: "SourceQuench", 5: "Redirect",
                8: "EchoRequest", 9: "RouterAdvertisement", 10: "RouterSolicitation",
                11: "TimeExceeded", 12: "ParameterProblem", 13: "TimestampRequest",
                14: "TimestampReply"}
ICMPV6_TYPES = {1: "DestinationUnreachable", 2: "PacketTooBig", 3: "TimeExceeded",
                4: "ParameterProblem", 128: "EchoRequest", 129: "EchoReply",
                133: "RouterSolicitation", 134: "RouterAdvertisement", 135: "NeighborSolicitation",
                136: "NeighborAdvertisement", 137: "Redirect"}
DNS_RCODES = ("No Error", "Format Error", "Server Failure", "Non-Existent Domain", "Not Implemented",
              "Query Refused")

DROP_REASONS = {number: name for name, number in flow_pb2.DropReason.items()}
# Enum names through dicts: cheaper than EnumTypeWrapper.Name() on every flow, and no ValueError.
VERDICTS = {number: name for name, number in flow_pb2.Verdict.items()}
VERDICTS_LOWER = {number: name.lower() for name, number in flow_pb2.Verdict.items()}
IP_VERSIONS = {number: name for name, number in flow_pb2.IPVersion.items()}
DIRECTIONS = {number: name.lower() for name, number in flow_pb2.TrafficDirection.items()}

MakeVec = Callable[[str, str, tuple[str, ...], bool], SeriesVec]


def flow_protocol(flow: flow_pb2.Flow) -> str:
    """Hubble's FlowProtocol: the L7 protocol name when the flow is an L7 record, else the L4 one."""
    if flow.event_type.type == MSG_L7 or flow.HasField("l7"):
        record = flow.l7.WhichOneof("record")
        return {"dns": "DNS", "http": "HTTP", "kafka": "Kafka"}.get(record, "Unknown L7")
    which = flow.l4.WhichOneof("protocol")
    return which if which else "Unknown L4"


def reporter(flow: flow_pb2.Flow) -> str:
    direction = flow.traffic_direction
    return "client" if direction == flow_pb2.EGRESS else "server" if direction == flow_pb2.INGRESS else "unknown"


def _reply(flow: flow_pb2.Flow) -> bool | None:
    return flow.is_reply.value if flow.HasField("is_reply") else None


class Handler:
    name = ""
    flags: tuple[str, ...] = ()

    def __init__(self, spec: MetricSpec, make_vec: MakeVec) -> None:
        unknown = set(spec.options) - set(CONTEXT_OPTIONS) - {f.lower() for f in self.flags} - {"cardinalitylimit"}
        if unknown:
            allowed = ", ".join((*self.flags, "sourceContext", "destinationContext", "labelsContext",
                                 "cardinalityLimit"))
            raise MetricsConfigError(f"metric spec {spec.text!r}: unknown option(s) {sorted(unknown)}; "
                                     f"expected {allowed}")
        self.options = spec.options
        self.context = ContextOptions.parse(spec.options)
        self.ctx_names = self.context.label_names()
        self.vecs: list[SeriesVec] = []
        self.setup(make_vec)

    def vec(self, make_vec: MakeVec, name: str, help_text: str, labels: tuple[str, ...],
            histogram: bool = False) -> SeriesVec:
        vec = make_vec(name, help_text, labels, histogram)
        self.vecs.append(vec)
        return vec

    def flag(self, name: str) -> bool:
        value = self.options.get(name.lower())
        return value is not None and value.lower() not in ("false", "0")

    def setup(self, make_vec: MakeVec) -> None:
        raise NotImplementedError

    def process(self, flow: flow_pb2.Flow) -> None:
        raise NotImplementedError


class FlowHandler(Handler):
    name = "flow"

    def setup(self, make_vec: MakeVec) -> None:
        self.flows = self.vec(make_vec, "hubble_flows_processed_total", "Total number of flows processed",
                              ("protocol", "type", "subtype", "verdict") + self.ctx_names)

    def process(self, flow: flow_pb2.Flow) -> None:
        etype = flow.event_type.type
        subtype = ""
        if etype == MSG_L7:
            type_name = "L7"
            subtype = {"dns": "DNS", "http": "HTTP", "kafka": "Kafka"}.get(flow.l7.WhichOneof("record"), "")
        elif etype == MSG_DROP:
            type_name = "Drop"
        elif etype == MSG_TRACE:
            type_name = "Trace"
            sub = flow.event_type.sub_type
            subtype = TRACE_POINTS[sub] if 0 <= sub < len(TRACE_POINTS) else str(sub)
        elif etype == MSG_POLICY_VERDICT:
            type_name = "PolicyVerdict"
        elif etype == MSG_CAPTURE:
            type_name = "Capture"
        else:
            type_name, subtype = "Unknown", str(etype)
        self.flows.inc((flow_protocol(flow), type_name, subtype, VERDICTS.get(flow.verdict, str(flow.verdict)))
                       + self.context.label_values(flow))


class DropHandler(Handler):
    name = "drop"

    def setup(self, make_vec: MakeVec) -> None:
        self.drops = self.vec(make_vec, "hubble_drop_total", "Number of drops",
                              self.ctx_names + ("reason", "protocol"))

    def process(self, flow: flow_pb2.Flow) -> None:
        if flow.verdict != DROPPED:
            return
        reason = DROP_REASONS.get(flow.drop_reason_desc) or str(flow.drop_reason_desc)
        self.drops.inc(self.context.label_values(flow) + (reason, flow_protocol(flow)))


class TcpHandler(Handler):
    name = "tcp"

    def setup(self, make_vec: MakeVec) -> None:
        self.tcp_flags = self.vec(make_vec, "hubble_tcp_flags_total", "TCP flag occurrences",
                                  ("flag", "family") + self.ctx_names)

    def process(self, flow: flow_pb2.Flow) -> None:
        if flow.verdict not in PASSED or not flow.l4.HasField("TCP"):
            return
        flags = flow.l4.TCP.flags
        family = IP_VERSIONS.get(flow.IP.ipVersion, str(flow.IP.ipVersion))
        ctx = self.context.label_values(flow)
        if flags.FIN:
            self.tcp_flags.inc(("FIN", family) + ctx)
        if flags.SYN:
            self.tcp_flags.inc(("SYN-ACK" if flags.ACK else "SYN", family) + ctx)
        if flags.RST:
            self.tcp_flags.inc(("RST", family) + ctx)


class IcmpHandler(Handler):
    name = "icmp"

    def setup(self, make_vec: MakeVec) -> None:
        self.icmp = self.vec(make_vec, "hubble_icmp_total", "Number of ICMP messages",
                             ("family", "type") + self.ctx_names)

    def process(self, flow: flow_pb2.Flow) -> None:
        which = flow.l4.WhichOneof("protocol")
        if which == "ICMPv4":
            family, icmp_type = "IPv4", ICMPV4_TYPES.get(flow.l4.ICMPv4.type, str(flow.l4.ICMPv4.type))
        elif which == "ICMPv6":
            family, icmp_type = "IPv6", ICMPV6_TYPES.get(flow.l4.ICMPv6.type, str(flow.l4.ICMPv6.type))
        else:
            return
        self.icmp.inc((family, icmp_type) + self.context.label_values(flow))


class PortDistributionHandler(Handler):
    name = "port-distribution"

    def setup(self, make_vec: MakeVec) -> None:
        self.ports = self.vec(make_vec, "hubble_port_distribution_total",
                              "Numbers of packets distributed by destination port",
                              ("protocol", "port") + self.ctx_names)

    def process(self, flow: flow_pb2.Flow) -> None:
        # A flow not known to be a request (is_reply unset) would count ephemeral reply ports.
        if flow.verdict not in PASSED or _reply(flow) is not False:
            return
        which = flow.l4.WhichOneof("protocol")
        if which in ("TCP", "UDP", "SCTP"):
            port = str(getattr(flow.l4, which).destination_port)
        elif which in ("ICMPv4", "ICMPv6"):
            port = "0"
        else:
            return
        self.ports.inc((which, port) + self.context.label_values(flow))


class FlowsToWorldHandler(Handler):
    name = "flows-to-world"
    flags = ("any-drop", "port", "syn-only")

    def setup(self, make_vec: MakeVec) -> None:
        self.port = self.flag("port")
        self.any_drop = self.flag("any-drop")
        self.syn_only = self.flag("syn-only")
        labels = ("protocol", "verdict") + (("port",) if self.port else ()) + self.ctx_names
        self.to_world = self.vec(make_vec, "hubble_flows_to_world_total",
                                 "Total number of flows to reserved:world", labels)

    def process(self, flow: flow_pb2.Flow) -> None:
        if "reserved:world" not in flow.destination.labels or not flow.HasField("l4"):
            return
        dropped = flow.verdict == DROPPED
        if dropped and not self.any_drop and flow.drop_reason_desc != flow_pb2.POLICY_DENIED:
            return
        is_reply = _reply(flow) is True
        if not dropped and is_reply:
            return
        if self.syn_only and (not flow.l4.TCP.flags.SYN or is_reply):
            return
        labels = (flow_protocol(flow), VERDICTS.get(flow.verdict, str(flow.verdict)))
        if self.port:
            which = flow.l4.WhichOneof("protocol")
            labels += (str(getattr(flow.l4, which).destination_port)
                       if which in ("TCP", "UDP", "SCTP") else "",)
        self.to_world.inc(labels + self.context.label_values(flow))


class PolicyHandler(Handler):
    name = "policy"

    def setup(self, make_vec: MakeVec) -> None:
        self.verdicts = self.vec(make_vec, "hubble_policy_verdicts_total",
                                 "Total number of Cilium network policy verdicts",
                                 ("direction", "match", "action") + self.ctx_names)

    def process(self, flow: flow_pb2.Flow) -> None:
        etype = flow.event_type.type
        if etype == MSG_POLICY_VERDICT:
            # The host may reach any local endpoint; its verdicts say nothing about policy.
            if flow.source.identity == RESERVED_HOST:
                return
            mt = flow.policy_match_type
            match = POLICY_MATCH[mt] if mt < len(POLICY_MATCH) else "unknown"
        elif etype == MSG_L7:
            match = "l7/" + (flow.l7.WhichOneof("record") or "")
        else:
            return
        direction = DIRECTIONS.get(flow.traffic_direction, str(flow.traffic_direction))
        self.verdicts.inc((direction, match, VERDICTS_LOWER.get(flow.verdict, str(flow.verdict)))
                          + self.context.label_values(flow))


class DnsHandler(Handler):
    name = "dns"
    flags = ("query", "ignoreAAAA")

    def setup(self, make_vec: MakeVec) -> None:
        self.include_query = self.flag("query")
        self.ignore_aaaa = self.flag("ignoreAAAA")
        extra = ("query",) if self.include_query else ()
        common = self.ctx_names + ("rcode", "qtypes", "ips_returned") + extra
        self.queries = self.vec(make_vec, "hubble_dns_queries_total", "Number of DNS queries observed", common)
        self.responses = self.vec(make_vec, "hubble_dns_responses_total", "Number of DNS responses observed",
                                  common)
        self.response_types = self.vec(make_vec, "hubble_dns_response_types_total",
                                       "Number of DNS response types", self.ctx_names + ("type", "qtypes") + extra)

    def process(self, flow: flow_pb2.Flow) -> None:
        if flow.l7.WhichOneof("record") != "dns":
            return
        dns = flow.l7.dns
        if self.ignore_aaaa and list(dns.qtypes) == ["AAAA"]:
            return
        ctx = self.context.label_values(flow)
        qtypes = ",".join(dns.qtypes)
        extra = (dns.query,) if self.include_query else ()
        if flow.verdict == DROPPED:
            self.queries.inc(ctx + ("Policy denied", qtypes, str(len(dns.ips))) + extra)
        elif not _is_dns_response(flow):
            self.queries.inc(ctx + ("", qtypes, str(len(dns.ips))) + extra)
        else:
            rcode = DNS_RCODES[dns.rcode] if dns.rcode < len(DNS_RCODES) else str(dns.rcode)
            self.responses.inc(ctx + (rcode, qtypes, str(len(dns.ips))) + extra)
            for rrtype in dns.rrtypes:
                self.response_types.inc(ctx + (rrtype, qtypes) + extra)


def _is_dns_response(flow: flow_pb2.Flow) -> bool:
    reply = _reply(flow)
    return reply if reply is not None else flow.l7.type == L7_RESPONSE


class HttpV2Handler(Handler):
    """Hubble's httpV2: one count per RESPONSE record (it carries status and latency), labelled by the
    request's direction (source = client), `reporter` client for egress and server for ingress.
    flowscope's option `grpcStatus` adds a `grpc_status` label (the grpc-status trailer of HTTP/2
    responses, "" for plain HTTP): gRPC reports errors there while the HTTP status stays 200."""

    name = "httpV2"
    flags = ("exemplars", "grpcStatus")

    def setup(self, make_vec: MakeVec) -> None:
        self.grpc = self.flag("grpcStatus")
        extra = ("grpc_status",) if self.grpc else ()
        self.requests = self.vec(make_vec, "hubble_http_requests_total", "Count of HTTP requests",
                                 self.ctx_names + ("method", "protocol", "status", "reporter") + extra)
        self.duration = self.vec(make_vec, "hubble_http_request_duration_seconds",
                                 "Quantiles of HTTP request duration in seconds",
                                 self.ctx_names + ("method", "reporter"), histogram=True)

    def process(self, flow: flow_pb2.Flow) -> None:
        l7 = flow.l7
        if l7.type != L7_RESPONSE or l7.WhichOneof("record") != "http":
            return
        http = l7.http
        ctx = self.context.label_values(flow, invert=True)
        who = reporter(flow)
        labels = ctx + (http.method, http.protocol, str(http.code), who)
        if self.grpc:
            status = grpc_status(http) if http.headers else None
            labels += ("" if status is None else str(status),)
        self.requests.inc(labels)
        self.duration.observe(ctx + (http.method, who), l7.latency_ns / 1e9)


class HttpHandler(Handler):
    """Hubble's original `http`: requests counted from REQUEST records, responses (with status) and
    the duration from RESPONSE records."""

    name = "http"
    flags = ("exemplars",)

    def setup(self, make_vec: MakeVec) -> None:
        self.requests = self.vec(make_vec, "hubble_http_requests_total", "Count of HTTP requests",
                                 self.ctx_names + ("method", "protocol", "reporter"))
        self.responses = self.vec(make_vec, "hubble_http_responses_total", "Count of HTTP responses",
                                  self.ctx_names + ("method", "protocol", "status", "reporter"))
        self.duration = self.vec(make_vec, "hubble_http_request_duration_seconds",
                                 "Quantiles of HTTP request duration in seconds",
                                 self.ctx_names + ("method", "reporter"), histogram=True)

    def process(self, flow: flow_pb2.Flow) -> None:
        l7 = flow.l7
        if l7.WhichOneof("record") != "http":
            return
        http = l7.http
        ctx = self.context.label_values(flow)
        who = reporter(flow)
        if l7.type == L7_REQUEST:
            self.requests.inc(ctx + (http.method, http.protocol, who))
        elif l7.type == L7_RESPONSE:
            self.responses.inc(ctx + (http.method, http.protocol, str(http.code), who))
            self.duration.observe(ctx + (http.method, who), l7.latency_ns / 1e9)


class KafkaHandler(Handler):
    """Hubble's kafka metrics. Hubble counts the proxy's one record per exchange; flowscope's parser
    emits a request and a response record, and only the response knows error_code and latency, so the
    response is counted, labelled by the request's direction as httpV2 does."""

    name = "kafka"

    def setup(self, make_vec: MakeVec) -> None:
        self.requests = self.vec(make_vec, "hubble_kafka_requests_total", "Count of Kafka requests",
                                 self.ctx_names + ("topic", "api_key", "error_code", "reporter"))
        self.duration = self.vec(make_vec, "hubble_kafka_request_duration_seconds",
                                 "Quantiles of Kafka request duration in seconds",
                                 self.ctx_names + ("topic", "api_key", "reporter"), histogram=True)

    def process(self, flow: flow_pb2.Flow) -> None:
        l7 = flow.l7
        if l7.type != L7_RESPONSE or l7.WhichOneof("record") != "kafka":
            return
        kafka = l7.kafka
        ctx = self.context.label_values(flow, invert=True)
        who = reporter(flow)
        self.requests.inc(ctx + (kafka.topic, kafka.api_key, str(kafka.error_code), who))
        self.duration.observe(ctx + (kafka.topic, kafka.api_key, who), l7.latency_ns / 1e9)


HANDLERS: dict[str, type[Handler]] = {h.name: h for h in (
    FlowHandler, DropHandler, TcpHandler, IcmpHandler, PortDistributionHandler, FlowsToWorldHandler,
    PolicyHandler, DnsHandler, HttpV2Handler, HttpHandler, KafkaHandler)}
