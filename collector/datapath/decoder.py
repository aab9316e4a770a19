"""Datapath event -> flow.Flow records (Hubble's shape), enriched with both ends' endpoints.

One event gives at most: an L3/L4 flow (trace or drop), a policy-verdict flow for a new connection of a
policy-selected endpoint, and the L7 flows the L7 dispatcher makes from the event's payload. The hot
path is table lookups and field assignments; everything that can be precomputed is (addresses, endpoint
messages, flag messages, summaries). L7 flows, two per HTTP request, are built as bytes (EncodedFlow):
the serialized template of their connection side followed by their own fields (protobuf parses
concatenated messages as one), so no message is copied, set or serialized per L7 flow."""

from __future__ import annotations

import itertools
import socket
import time
import uuid
from dataclasses import dataclass
from typing import Protocol

from collector.datapath import events as ev
from collector.datapath.enrich import Enricher
from collector.datapath.summary import TCP_FLAGS, TCP_SUMMARY, icmp_summary
from collector.l7 import ConnKey
from collector.observer.wire import FLOW_KEY, EncodedFlow, node_name_field, time_fields
from common.errors import UserError
from proto.flow import flow_pb2
from proto.wire import TimestampCache, tag, varint
from google.protobuf import wrappers_pb2

# Hubble's monitor event types and trace sub-types (observation points of Cilium's monitor API).
EVENT_DROP = 1
EVENT_TRACE = 4
EVENT_POLICY_VERDICT = 5
EVENT_L7 = 129
TRACE_TO_LXC = 0
TRACE_FROM_LXC = 5
DROP_POLICY_DENIED = flow_pb2.POLICY_DENIED
DROP_POLICY_DENY = flow_pb2.POLICY_DENY

_TRUE = wrappers_pb2.BoolValue(value=True)
_FALSE = wrappers_pb2.BoolValue(value=False)
_ADDR_CACHE_LIMIT = 65536
_TEMPLATE_CACHE_LIMIT = 16384
# Keys of the fields an L7 flow adds to its template's bytes.
_UUID, _L7 = tag(flow_pb2.Flow, "uuid"), tag(flow_pb2.Flow, "l7")
_UUID_COUNTER = (1 << 48) - 1  # 12 hex digits
_SUMMARY = tag(flow_pb2.Flow, "Summary")
_L7_PROTOCOLS = (socket.IPPROTO_TCP, socket.IPPROTO_UDP)
_new_key = tuple.__new__  # ConnKey(...) without its Python-level __new__ (this runs for every segment)
_PARTIAL = tag(flow_pb2.Flow, "l7_partial") + b"\x01"
# Fields an L3/L4 flow adds to its template's bytes (l4 and counters are per event; UDP's port numbers
# are TCP's).
_L4, _L4_TCP, _L4_UDP = tag(flow_pb2.Flow, "l4"), tag(flow_pb2.Layer4, "TCP"), tag(flow_pb2.Layer4, "UDP")
_SPORT, _DPORT = tag(flow_pb2.TCP, "source_port"), tag(flow_pb2.TCP, "destination_port")
_FLAGS_FIELD = tuple(b"".join((tag(flow_pb2.TCP, "flags"), varint(len(data)), data))
                     for data in (flags.SerializeToString() for flags in TCP_FLAGS))
_COUNTERS, _FIRST_SEEN = tag(flow_pb2.Flow, "counters"), tag(flow_pb2.FlowCounters, "first_seen")
_PACKETS_FWD, _BYTES_FWD = tag(flow_pb2.FlowCounters, "packets_forward"), tag(flow_pb2.FlowCounters, "bytes_forward")
_PACKETS_REV, _BYTES_REV = tag(flow_pb2.FlowCounters, "packets_reverse"), tag(flow_pb2.FlowCounters, "bytes_reverse")
_DURATION = tag(flow_pb2.FlowCounters, "duration_ns")
_CLOSED = " (connection closed)"


def _summary_field(text: str) -> bytes:
    data = text.encode()
    return b"".join((_SUMMARY, varint(len(data)), data))


# Summary fields by TCP flags byte, for a trace event and for a connection's end.
_TCP_SUMMARY_FIELD = tuple(_summary_field(text) for text in TCP_SUMMARY)
_TCP_END_SUMMARY_FIELD = tuple(_summary_field(text + _CLOSED) for text in TCP_SUMMARY)
_UDP_SUMMARY_FIELD, _UDP_END_SUMMARY_FIELD = _summary_field("UDP"), _summary_field("UDP" + _CLOSED)
TLS_SUMMARY_SUFFIX = " (TLS)"


class DecodeError(UserError):
    """An event the decoder cannot read (short, unknown family). Counted and skipped, never fatal."""


class PolicyNames(Protocol):
    """Supplied by the enforcer (enforcer.datapath.PolicyNames)."""

    def policy_for_id(self, policy_id: int) -> flow_pb2.Policy | None: ...


class L7Sink(Protocol):
    """collector.l7.L7Dispatcher's interface, as the contract gives it."""

    def on_segment(self, conn, from_client: bool, payload: bytes, segment_len: int, ts_ns: int) -> list: ...

    def on_close(self, conn) -> None: ...


class NameSource(Protocol):
    """collector.l7.FqdnCache's read side (the L7 dispatcher feeds it with DNS answers)."""

    def names_for_ip(self, ip: str) -> list[str]: ...


@dataclass(frozen=True, slots=True)
class _Template:
    """The fields flows of two addresses on one device share, serialized once."""

    data: bytes
    namespaces: tuple[tuple[str, str], ...]


class Decoder:
    def __init__(self, enricher: Enricher, node_name: str = "", l7: L7Sink | None = None,
                 names: NameSource | None = None, policies: PolicyNames | None = None, tls: bool = False) -> None:
        """`tls`: the L7 flows of this decoder come from a TLS library's plaintext (collector.tls):
        they are marked (l7_tls, summary suffix) so a reader knows no packet carried these bytes."""
        self.enricher = enricher
        self.tls = tls
        self._summary_suffix = TLS_SUMMARY_SUFFIX.encode() if tls else b""
        self.node_name = node_name
        self.l7 = l7
        self.names = names
        self.policies = policies
        self.interfaces: dict[int, str] = {}
        self._addrs: dict[bytes, str] = {}
        self._templates: dict[tuple, flow_pb2.Flow] = {}
        self._trace_templates: dict[tuple, _Template] = {}
        self._l7_templates: dict[tuple, _Template] = {}
        self._uuid_prefix = str(uuid.uuid4())[:24]
        # Flow.uuid as a field up to its counter: the prefix and 12 hex digits are always 36 bytes.
        self._uuid_field = _UUID + varint(36) + self._uuid_prefix.encode()
        self._timestamps = TimestampCache()
        self._first_seen = TimestampCache()  # a second cache: first_seen and time rarely share a second
        self._named = ("", b"")  # (node_name, its GetFlowsResponse field)
        self._seq = itertools.count()
        self.sync_clock()

    def sync_clock(self) -> None:
        """Kernel timestamps are CLOCK_MONOTONIC; flows carry wall-clock time."""
        self._offset = time.time_ns() - time.monotonic_ns()

    def decode(self, raw: bytes) -> list[flow_pb2.Flow]:
        """All flows of one perf event. Raises DecodeError for an unreadable event."""
        return [as_message(flow) for flow in self.decode_encoded(raw)]

    def decode_encoded(self, raw: bytes) -> list[flow_pb2.Flow | EncodedFlow]:
        """decode(), its L7 flows left as the bytes the Observer stores (the datapath's path)."""
        try:
            event = ev.unpack_event(raw)
        except Exception as err:  # struct.error: short read
            raise DecodeError(f"datapath event of {len(raw)} bytes: expected {ev.FLOW_EVENT_SIZE}") from err
        payload = b""
        if event.l7:
            start = ev.FLOW_EVENT_SIZE + event.payload_off
            payload = raw[start:ev.FLOW_EVENT_SIZE + event.cap_len]
        return self.decode_event_encoded(event, payload)

    def decode_event(self, event: ev.FlowEvent, payload: bytes = b"") -> list[flow_pb2.Flow]:
        return [as_message(flow) for flow in self.decode_event_encoded(event, payload)]

    def decode_event_encoded(self, event: ev.FlowEvent, payload: bytes = b"") -> list[flow_pb2.Flow | EncodedFlow]:
        if event.family not in (4, 6):
            raise DecodeError(f"datapath event family {event.family}: expected 4 or 6")
        flows: list[flow_pb2.Flow | EncodedFlow] = []
        src = self._addr(event.saddr, event.family)
        dst = self._addr(event.daddr, event.family)
        if event.kind != ev.EV_NONE:
            if _plain(event):
                flows.append(self._l3l4_encoded(event, src, dst))
            else:
                flow = self._l3l4(event, src, dst)
                flows.append(flow)
                if event.kind == ev.EV_NEW and (event.policy_match or event.verdict == ev.VERDICT_AUDIT):
                    flows.append(self._policy_verdict(flow, event))
        if payload and self.l7 is not None and event.proto in _L7_PROTOCOLS:
            flows.extend(self._l7(event, src, dst, payload))
        if event.kind == ev.EV_END:  # from the table sweep or the kernel (a reused 5-tuple)
            self.close_connection(event)
        return flows

    def close_connection(self, event: ev.FlowEvent) -> None:
        """The connection left the table: let the L7 parsers free its state (decoding its end event
        does this; a sweep that reports no end flows calls it)."""
        if self.l7 is not None and event.proto in _L7_PROTOCOLS:
            src = self._addr(event.saddr, event.family)
            dst = self._addr(event.daddr, event.family)
            family = socket.AF_INET if event.family == 4 else socket.AF_INET6
            self.l7.on_close(ConnKey(family, src, event.sport, dst, event.dport, event.proto))

    def _addr(self, raw: bytes, family: int) -> str:
        key = raw if family == 6 else raw[:4]
        text = self._addrs.get(key)
        if text is None:
            text = socket.inet_ntop(socket.AF_INET6 if family == 6 else socket.AF_INET, key)
            if len(self._addrs) >= _ADDR_CACHE_LIMIT:
                self._addrs = {}
            self._addrs[key] = text
        return text

    def invalidate(self) -> None:
        """Endpoints, names or interfaces changed: rebuild templates on next use."""
        self.enricher.invalidate()
        self._templates = {}
        self._trace_templates = {}
        self._l7_templates = {}

    def _template(self, ifindex: int, family: int, src: str, dst: str, obs: int = 0, is_reply: int = 0,
                  verdict: int = 0) -> flow_pb2.Flow:
        """The fields all events of two addresses on one device share (IP, endpoints, names, node,
        interface), plus, for obs != 0, those of a trace event: built once, then copied per event."""
        key = (ifindex, src, dst, obs, is_reply, verdict)
        flow = self._templates.get(key)
        if flow is not None:
            return flow
        flow = flow_pb2.Flow()
        if obs:
            flow.CopyFrom(self._template(ifindex, family, src, dst))
            to_pod = obs == ev.OBS_TO_POD
            flow.Type = flow_pb2.L3_L4
            flow.trace_observation_point = flow_pb2.TO_ENDPOINT if to_pod else flow_pb2.FROM_ENDPOINT
            flow.is_reply.CopyFrom(_TRUE if is_reply else _FALSE)
            # The connection's direction from the pod's point of view: a reply travels against it.
            flow.traffic_direction = flow_pb2.INGRESS if to_pod != bool(is_reply) else flow_pb2.EGRESS
            flow.verdict = flow_pb2.AUDIT if verdict == ev.VERDICT_AUDIT else flow_pb2.FORWARDED
            flow.event_type.type = EVENT_TRACE
            flow.event_type.sub_type = TRACE_TO_LXC if to_pod else TRACE_FROM_LXC
        else:
            ip = flow.IP
            ip.source = src
            ip.destination = dst
            ip.ipVersion = flow_pb2.IPv4 if family == 4 else flow_pb2.IPv6
            source = self.enricher.peer(src)
            destination = self.enricher.peer(dst)
            flow.source.CopyFrom(source.endpoint)
            flow.destination.CopyFrom(destination.endpoint)
            if source.service is not None:
                flow.source_service.CopyFrom(source.service)
            if destination.service is not None:
                flow.destination_service.CopyFrom(destination.service)
            if self.names is not None:
                if not source.is_pod:
                    flow.source_names.extend(self.names.names_for_ip(src))
                if not destination.is_pod:
                    flow.destination_names.extend(self.names.names_for_ip(dst))
            flow.node_name = self.node_name
            flow.interface.index = ifindex
            flow.interface.name = self.interfaces.get(ifindex, "")
        if len(self._templates) >= _TEMPLATE_CACHE_LIMIT:
            self._templates = {}
        self._templates[key] = flow
        return flow

    def _stamp(self, flow: flow_pb2.Flow, event: ev.FlowEvent, sport: int, dport: int) -> None:
        """Per-event fields: time, uuid, ports."""
        self._stamp_time(flow, event.ts_ns)
        _set_ports(flow, event.proto, sport, dport)

    def _stamp_time(self, flow: flow_pb2.Flow, ts_ns: int) -> None:
        _set_time(flow.time, ts_ns + self._offset)
        flow.uuid = f"{self._uuid_prefix}{next(self._seq):012x}"

    def _l3l4(self, event: ev.FlowEvent, src: str, dst: str) -> flow_pb2.Flow:
        flow = flow_pb2.Flow()
        flow.CopyFrom(self._template(event.ifindex, event.family, src, dst, event.obs or ev.OBS_FROM_POD,
                                     event.is_reply, event.verdict))
        self._stamp(flow, event, event.sport, event.dport)
        proto = event.proto
        if proto == socket.IPPROTO_TCP:
            flags = event.tcp_flags if event.kind != ev.EV_END else event.flags_fwd | event.flags_rev
            flow.l4.TCP.flags.CopyFrom(TCP_FLAGS[flags])
            flow.Summary = TCP_SUMMARY[flags]
        elif proto == socket.IPPROTO_UDP:
            flow.Summary = "UDP"
        elif proto in (socket.IPPROTO_ICMP, socket.IPPROTO_ICMPV6):
            icmp = flow.l4.ICMPv4 if proto == socket.IPPROTO_ICMP else flow.l4.ICMPv6
            icmp.type = event.sport
            icmp.code = event.dport
            flow.Summary = icmp_summary(proto == socket.IPPROTO_ICMPV6, event.sport)
        else:
            flow.Summary = f"IP protocol {proto}"
        if event.kind == ev.EV_END:
            flow.Summary += _CLOSED
        if event.kind == ev.EV_DROP:
            self._drop(flow, event)
            return flow
        if event.policy_id:
            self._policies(flow, event, allowed=event.verdict != ev.VERDICT_AUDIT)
        counters = flow.counters
        counters.packets_forward = event.packets_fwd
        counters.bytes_forward = event.bytes_fwd
        counters.packets_reverse = event.packets_rev
        counters.bytes_reverse = event.bytes_rev
        _set_time(counters.first_seen, event.first_seen_ns + self._offset)
        counters.duration_ns = max(0, event.ts_ns - event.first_seen_ns)
        return flow

    def _l3l4_encoded(self, event: ev.FlowEvent, src: str, dst: str) -> EncodedFlow:
        """_l3l4() as bytes, for a TCP or UDP event without a policy or a drop (see _plain): the trace
        template's bytes, then this event's time, uuid, ports and flags, summary and counters (protobuf
        parses the concatenation as one message). No message is copied, set or serialized per flow."""
        key = (event.ifindex, src, dst, event.obs or ev.OBS_FROM_POD, event.is_reply, event.verdict)
        base = self._trace_templates.get(key)
        if base is None:
            base = _serialized(self._template(event.ifindex, event.family, src, dst, *key[3:]))
            if len(self._trace_templates) >= _TEMPLATE_CACHE_LIMIT:
                self._trace_templates = {}
            self._trace_templates[key] = base
        end = event.kind == ev.EV_END
        if event.proto == socket.IPPROTO_TCP:
            flags = event.tcp_flags if not end else event.flags_fwd | event.flags_rev
            l4 = _l4_field(_L4_TCP, event.sport, event.dport, _FLAGS_FIELD[flags])
            summary = _TCP_END_SUMMARY_FIELD[flags] if end else _TCP_SUMMARY_FIELD[flags]
        else:
            flags = 0
            l4 = _l4_field(_L4_UDP, event.sport, event.dport, b"")
            summary = _UDP_END_SUMMARY_FIELD if end else _UDP_SUMMARY_FIELD
        pf, bf, pr, br = event.packets_fwd, event.bytes_fwd, event.packets_rev, event.bytes_rev
        first_seen = self._first_seen.encode(event.first_seen_ns + self._offset)
        duration = event.ts_ns - event.first_seen_ns
        counters = b"".join((_PACKETS_FWD + varint(pf) if pf else b"", _BYTES_FWD + varint(bf) if bf else b"",
                             _PACKETS_REV + varint(pr) if pr else b"", _BYTES_REV + varint(br) if br else b"",
                             _FIRST_SEEN, varint(len(first_seen)), first_seen,
                             _DURATION + varint(duration) if duration > 0 else b""))
        wall_ns = event.ts_ns + self._offset
        node_name = self.node_name
        if node_name != self._named[0]:
            self._named = (node_name, node_name_field(node_name))
        stamp_field, suffix = time_fields(self._named[1], self._timestamps.encode(wall_ns))
        uuid = b"%s%012x" % (self._uuid_field, next(self._seq) & _UUID_COUNTER)
        data = b"".join((base.data, stamp_field, uuid, l4, summary,
                         _COUNTERS, varint(len(counters)), counters))
        return EncodedFlow(data, b"".join((FLOW_KEY, varint(len(data)), data, suffix)), wall_ns, node_name,
                           base.namespaces, (base.data, event.is_reply, event.proto, event.dport, flags, b""))

    def _drop(self, flow: flow_pb2.Flow, event: ev.FlowEvent) -> None:
        reason = DROP_POLICY_DENY if event.policy_action == ev.POLICY_ACTION_DENY_EXPLICIT else DROP_POLICY_DENIED
        flow.verdict = flow_pb2.DROPPED
        flow.drop_reason = reason
        flow.drop_reason_desc = reason
        flow.event_type.type = EVENT_DROP
        flow.event_type.sub_type = reason
        flow.policy_match_type = event.policy_match
        flow.Summary = f"{flow.Summary} ({flow_pb2.DropReason.Name(reason)})"
        self._policies(flow, event, allowed=False)

    def _policies(self, flow: flow_pb2.Flow, event: ev.FlowEvent, allowed: bool) -> None:
        """*_allowed_by / *_denied_by, on the side of the pod whose policy decided."""
        if self.policies is None or not event.policy_id:
            return
        policy = self.policies.policy_for_id(event.policy_id)
        if policy is None:
            return
        ingress = flow.traffic_direction == flow_pb2.INGRESS
        if allowed:
            target = flow.ingress_allowed_by if ingress else flow.egress_allowed_by
        else:
            target = flow.ingress_denied_by if ingress else flow.egress_denied_by
        target.add().CopyFrom(policy)

    def _policy_verdict(self, trace: flow_pb2.Flow, event: ev.FlowEvent) -> flow_pb2.Flow:
        flow = flow_pb2.Flow()
        flow.CopyFrom(trace)
        flow.uuid = f"{self._uuid_prefix}{next(self._seq):012x}"
        flow.event_type.type = EVENT_POLICY_VERDICT
        flow.event_type.sub_type = 0
        flow.policy_match_type = event.policy_match
        flow.ClearField("counters")
        return flow

    def _l7(self, event: ev.FlowEvent, src: str, dst: str, payload: bytes) -> list[EncodedFlow]:
        if event.is_reply:
            client, cport, server, sport = dst, event.dport, src, event.sport
        else:
            client, cport, server, sport = src, event.sport, dst, event.dport
        family = socket.AF_INET if event.family == 4 else socket.AF_INET6
        conn = _new_key(ConnKey, (family, client, cport, server, sport, event.proto))
        records = self.l7.on_segment(conn, not event.is_reply, payload, event.seg_len, event.ts_ns)
        if not records:
            return []
        flows = []
        to_pod = event.obs == ev.OBS_TO_POD
        direction = flow_pb2.INGRESS if to_pod != bool(event.is_reply) else flow_pb2.EGRESS
        wall_ns = event.ts_ns + self._offset
        node_name = self.node_name
        if node_name != self._named[0]:
            self._named = (node_name, node_name_field(node_name))
        stamp_field, suffix = time_fields(self._named[1], self._timestamps.encode(wall_ns))
        l4_tag = _L4_TCP if event.proto == socket.IPPROTO_TCP else _L4_UDP
        for record in records:
            if record.is_reply:
                base = self._l7_base(event, server, client, direction, True)
                l4, to_port = _l4_field(l4_tag, sport, cport, b""), cport
            else:
                base = self._l7_base(event, client, server, direction, False)
                l4, to_port = _l4_field(l4_tag, cport, sport, b""), sport
            uuid = b"%s%012x" % (self._uuid_field, next(self._seq) & _UUID_COUNTER)
            layer7 = record.layer7_bytes()
            summary = record.summary.encode() + self._summary_suffix
            data = b"".join((base.data, stamp_field, uuid, l4, _L7, varint(len(layer7)),
                             layer7, _SUMMARY, varint(len(summary)), summary, _PARTIAL if record.partial else b""))
            flows.append(EncodedFlow(data, b"".join((FLOW_KEY, varint(len(data)), data, suffix)), wall_ns,
                                     node_name, base.namespaces,
                                     (base.data, record.is_reply, event.proto, to_port, 0, layer7)))
        return flows

    def _l7_base(self, event: ev.FlowEvent, src: str, dst: str, direction: int, is_reply: bool) -> _Template:
        """The L7 template of these two addresses' side, device and direction; the ports are each
        flow's own (a template per connection would be built anew for every short connection)."""
        key = (event.ifindex, src, dst, direction, is_reply)
        template = self._l7_templates.get(key)
        if template is None:
            flow = flow_pb2.Flow()
            flow.CopyFrom(self._template(event.ifindex, event.family, src, dst))
            flow.Type = flow_pb2.L7
            flow.verdict = flow_pb2.FORWARDED
            flow.event_type.type = EVENT_L7
            flow.traffic_direction = direction
            flow.is_reply.CopyFrom(_TRUE if is_reply else _FALSE)
            flow.l7_tls = self.tls
            template = _serialized(flow)
            if len(self._l7_templates) >= _TEMPLATE_CACHE_LIMIT:
                self._l7_templates = {}
            self._l7_templates[key] = template
        return template


def _plain(event: ev.FlowEvent) -> bool:
    """An L3/L4 event whose flow _l3l4_encoded builds: TCP or UDP, no policy named, not a drop or an audit."""
    return (event.proto in _L7_PROTOCOLS and not event.policy_id and not event.policy_match
            and event.verdict == ev.VERDICT_FORWARDED and event.kind != ev.EV_DROP)


def _serialized(flow: flow_pb2.Flow) -> _Template:
    namespaces = tuple((ep.cluster_name, ep.namespace) for ep in (flow.source, flow.destination) if ep.namespace)
    return _Template(flow.SerializeToString(), namespaces)


def _l4_field(protocol: bytes, sport: int, dport: int, flags: bytes) -> bytes:
    """Flow.l4 with TCP or UDP (`protocol`: its Layer4 key) ports, and TCP flags if given."""
    ports = b"".join((_SPORT, varint(sport), _DPORT, varint(dport), flags))
    inner = b"".join((protocol, varint(len(ports)), ports))
    return b"".join((_L4, varint(len(inner)), inner))


def as_message(flow: flow_pb2.Flow | EncodedFlow) -> flow_pb2.Flow:
    return flow.parse() if type(flow) is EncodedFlow else flow


def _set_time(stamp, wall_ns: int) -> None:
    """Timestamp.FromNanoseconds without its Python overhead (this runs for every flow)."""
    stamp.seconds = wall_ns // 1_000_000_000
    stamp.nanos = wall_ns % 1_000_000_000


def _set_ports(flow: flow_pb2.Flow, proto: int, sport: int, dport: int) -> None:
    if proto == socket.IPPROTO_TCP:
        tcp = flow.l4.TCP
        tcp.source_port = sport
        tcp.destination_port = dport
    elif proto == socket.IPPROTO_UDP:
        udp = flow.l4.UDP
        udp.source_port = sport
        udp.destination_port = dport
