"""The decoder on crafted events (no kernel): direction and reply rules, drops, end events, and
arbitrary bytes (fuzz) that may only ever raise DecodeError."""

from __future__ import annotations

import ipaddress

import pytest
from hypothesis import given, settings, strategies as st

from collector.datapath import DecodeError
from collector.datapath import events as ev
from collector.datapath.synthetic import decoder, event
from collector.identity import RESERVED_WORLD
from proto.flow import flow_pb2
from proto.observer import observer_pb2

@pytest.mark.parametrize("obs, is_reply, point, direction", [
    (ev.OBS_FROM_POD, 0, flow_pb2.FROM_ENDPOINT, flow_pb2.EGRESS),
    (ev.OBS_FROM_POD, 1, flow_pb2.FROM_ENDPOINT, flow_pb2.INGRESS),
    (ev.OBS_TO_POD, 0, flow_pb2.TO_ENDPOINT, flow_pb2.INGRESS),
    (ev.OBS_TO_POD, 1, flow_pb2.TO_ENDPOINT, flow_pb2.EGRESS),
])
def test_observation_point_and_direction(obs, is_reply, point, direction):
    [flow] = decoder().decode(event(obs=obs, is_reply=is_reply))
    assert (flow.trace_observation_point, flow.traffic_direction, flow.is_reply.value) == \
        (point, direction, bool(is_reply))
    assert flow.event_type.type == 4 and flow.event_type.sub_type == (0 if obs == ev.OBS_TO_POD else 5)


def test_pod_and_world_endpoints_and_counters():
    [flow] = decoder().decode(event(packets_rev=3, bytes_rev=300))
    assert flow.source.pod_name == "web-1" and flow.source.workloads[0].name == "web"
    assert flow.source.identity >= 256 and "k8s:app=web" in flow.source.labels
    assert (flow.destination.identity, list(flow.destination.labels)) == (RESERVED_WORLD, ["reserved:world"])
    assert (flow.counters.packets_forward, flow.counters.bytes_reverse, flow.counters.duration_ns) == \
        (1, 300, 1_000_000_000)
    assert flow.interface.index == 7 and flow.node_name == "node-1" and flow.Summary == "TCP Flags: SYN"


@pytest.mark.parametrize("action, reason", [(ev.POLICY_ACTION_DENY, flow_pb2.POLICY_DENIED),
                                            (ev.POLICY_ACTION_DENY_EXPLICIT, flow_pb2.POLICY_DENY)])
def test_policy_drop(action, reason):
    [flow] = decoder().decode(event(kind=ev.EV_DROP, verdict=ev.VERDICT_DROPPED, policy_action=action,
                                    policy_id=12, packets_fwd=0, bytes_fwd=0))
    assert (flow.verdict, flow.drop_reason_desc, flow.event_type.type) == (flow_pb2.DROPPED, reason, 1)
    assert [p.name for p in flow.egress_denied_by] == ["p12"] and not flow.ingress_denied_by


def test_allowed_by_policy_adds_a_policy_verdict_flow():
    trace, verdict = decoder().decode(event(obs=ev.OBS_TO_POD, policy_id=3, policy_match=2,
                                            saddr=ipaddress.ip_address("192.0.2.9").packed.ljust(16, b"\0"),
                                            daddr=ipaddress.ip_address("10.244.0.2").packed.ljust(16, b"\0")))
    assert [p.name for p in trace.ingress_allowed_by] == ["p3"]
    assert verdict.event_type.type == 5 and verdict.policy_match_type == 2 and verdict.uuid != trace.uuid


def test_payload_goes_to_the_l7_dispatcher_once_per_segment():
    request = b"GET /users?id=1 HTTP/1.1\r\nHost: api\r\n\r\n"
    dec = decoder()
    header = b"\0" * 54
    raw = event(kind=ev.EV_NONE, dport=8080, l7=ev.L7_PREFIX, payload_off=54, cap_len=54 + len(request),
                seg_len=len(request)) + header + request
    [flow] = dec.decode(raw)
    assert (flow.Type, flow.l7.type, flow.l7.http.method, flow.l4.TCP.destination_port) == \
        (flow_pb2.L7, flow_pb2.REQUEST, "GET", 8080)
    assert flow.is_reply.value is False and flow.traffic_direction == flow_pb2.EGRESS


def test_an_end_event_frees_the_connections_l7_state():
    """The kernel's end event for a reused port comes before the new connection's first payload: the
    new request is parsed as a request of its own, not as the old connection's next bytes."""
    dec = decoder()

    def segment(data: bytes, is_reply: int, ts: int) -> bytes:
        ports = dict(sport=8080, dport=40000, saddr=ipaddress.ip_address("192.0.2.9").packed.ljust(16, b"\0"),
                     daddr=ipaddress.ip_address("10.244.0.2").packed.ljust(16, b"\0")) if is_reply else {}
        return event(kind=ev.EV_NONE, dport=8080, l7=ev.L7_PREFIX, payload_off=0, cap_len=len(data),
                     seg_len=len(data), is_reply=is_reply, ts_ns=ts, **ports) + data

    half = b"GET /old HTTP/1.1\r\nHost: api\r\n"  # the old connection ended mid-request
    assert dec.decode(segment(half, 0, 2_000_000_000)) == []
    [end] = dec.decode(event(kind=ev.EV_END, dport=8080, flags_fwd=0x1b, flags_rev=0x1b, ts_ns=2_100_000_000))
    assert end.Summary.endswith("(connection closed)")
    [request] = dec.decode(segment(b"GET /new HTTP/1.1\r\nHost: api\r\n\r\n", 0, 3_000_000_000))
    assert (request.l7.type, request.l7.http.url) == (flow_pb2.REQUEST, "http://api/new")


def test_ipv6_icmp_and_end_event():
    [flow] = decoder().decode(event(family=6, proto=58, sport=128, dport=0, tcp_flags=0,
                                    saddr=ipaddress.ip_address("fd00::2").packed,
                                    daddr=ipaddress.ip_address("fd00::3").packed))
    assert (flow.IP.source, flow.IP.ipVersion, flow.l4.ICMPv6.type) == ("fd00::2", flow_pb2.IPv6, 128)
    assert flow.Summary == "ICMPv6 EchoRequest"
    [end] = decoder().decode(event(kind=ev.EV_END, flags_fwd=0x13, flags_rev=0x12))
    assert end.Summary == "TCP Flags: SYN, ACK, FIN (connection closed)"


@settings(max_examples=400, deadline=None)
@given(st.binary(max_size=400))
def test_arbitrary_bytes_only_raise_decode_error(raw):
    try:
        flows = decoder().decode(raw)
    except DecodeError:
        return
    assert all(isinstance(f, flow_pb2.Flow) for f in flows)


@settings(max_examples=300, deadline=None)
@given(st.builds(dict, kind=st.integers(0, 255), obs=st.integers(0, 255), proto=st.integers(0, 255),
                 family=st.sampled_from([4, 6]), tcp_flags=st.integers(0, 255), verdict=st.integers(0, 255),
                 policy_action=st.integers(0, 255), l7=st.integers(0, 255), payload_off=st.integers(0, 65535),
                 cap_len=st.integers(0, 65535), sport=st.integers(0, 65535)),
       st.binary(max_size=200))
def test_any_field_values_decode(fields, tail):
    flows = decoder().decode(event(**fields) + tail)
    assert all(f.IP.source for f in flows)


@pytest.mark.parametrize("fields", [
    dict(),  # a new TCP connection from the pod
    dict(kind=ev.EV_REPLY, is_reply=1, obs=ev.OBS_TO_POD, tcp_flags=0x12, packets_rev=1, bytes_rev=74),
    dict(kind=ev.EV_FLAGS, tcp_flags=0x11, flags_fwd=0x13, flags_rev=0x12, packets_fwd=0, bytes_fwd=0),
    dict(kind=ev.EV_UPDATE, tcp_flags=0x10, packets_fwd=2**40, bytes_fwd=2**62, ts_ns=1_000_000_000),
    dict(kind=ev.EV_END, tcp_flags=0, flags_fwd=0x13, flags_rev=0x1a, packets_rev=5, bytes_rev=9000),
    dict(kind=ev.EV_PACKET, tcp_flags=0, sport=0, dport=0),
    dict(proto=17, sport=5353, dport=53, tcp_flags=0),
    dict(proto=17, kind=ev.EV_END, is_reply=0, first_seen_ns=0),
    dict(family=6, saddr=ipaddress.ip_address("fd00::2").packed, daddr=ipaddress.ip_address("fd00::3").packed),
])
def test_l3l4_flows_built_as_bytes_parse_to_the_message_path(fields):
    """TCP and UDP trace flows are built as bytes (the template's, then this event's fields): they must
    be the very message the message path builds for the same event."""
    dec = decoder()
    raw = event(**fields)
    [encoded] = dec.decode_encoded(raw)
    assert type(encoded) is not flow_pb2.Flow
    unpacked = ev.unpack_event(raw)
    message = dec._l3l4(unpacked, dec._addr(unpacked.saddr, unpacked.family), dec._addr(unpacked.daddr, unpacked.family))
    message.uuid = encoded.parse().uuid
    assert encoded.parse() == message
    response = observer_pb2.GetFlowsResponse.FromString(encoded.response)
    assert (response.flow, response.node_name, response.time) == (message, "node-1", message.time)
