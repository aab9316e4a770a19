"""EncodedFlows counted from their facts (collector/metrics/replay.py) give exactly the exposition
that parsing each flow and running the handlers gives, for the decoder's real flows."""

import ipaddress

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry, generate_latest

from collector.datapath import events as ev
from collector.datapath.synthetic import decoder, event
from collector.metrics import DEFAULT_METRICS, FlowMetrics
from collector.metrics.replay import split_latency
from collector.observer.wire import EncodedFlow
from proto.flow import flow_pb2

CONFIGS = [
    list(DEFAULT_METRICS),
    ["flow:sourceContext=pod|ip;destinationContext=dns|reserved-identity", "tcp:labelsContext=source_ip,destination_ip",
     "port-distribution:sourceContext=workload", "flows-to-world:port;syn-only;any-drop;sourceContext=app",
     "policy:sourceEgressContext=pod;destinationIngressContext=identity", "http:labelsContext=traffic_direction"],
]
POD_IP = ipaddress.ip_address("10.244.0.2").packed.ljust(16, b"\0")
PEERS = [ipaddress.ip_address(ip).packed.ljust(16, b"\0") for ip in ("192.0.2.9", "198.51.100.7")]

trace = st.fixed_dictionaries({
    "kind": st.sampled_from([ev.EV_NEW, ev.EV_REPLY, ev.EV_FLAGS, ev.EV_UPDATE, ev.EV_END]),
    "tcp_flags": st.sampled_from([0x02, 0x12, 0x11, 0x10, 0x04, 0x14, 0x18]),
    "flags_fwd": st.sampled_from([0x02, 0x1b, 0x13]), "flags_rev": st.sampled_from([0, 0x12, 0x1b, 0x14]),
    "is_reply": st.integers(0, 1), "obs": st.sampled_from([ev.OBS_FROM_POD, ev.OBS_TO_POD]),
    "proto": st.sampled_from([6, 17]), "sport": st.integers(1, 65535), "dport": st.sampled_from([443, 53, 8080]),
    "daddr": st.sampled_from(PEERS), "ifindex": st.sampled_from([7, 9]),
})
exchange = st.tuples(st.sampled_from(["GET", "POST"]), st.sampled_from(["/", "/users", "/x"]),
                     st.sampled_from([200, 404, 503]), st.integers(0, 3_000_000_000), st.integers(1024, 65535))


def http_events(method: str, path: str, code: int, latency_ns: int, port: int, ts: int) -> list[bytes]:
    """A request from the pod to PEERS[0]:8080 and its response, as payload events."""
    request = f"{method} {path} HTTP/1.1\r\nHost: api\r\n\r\n".encode()
    response = f"HTTP/1.1 {code} X\r\nContent-Length: 0\r\n\r\n".encode()
    common = dict(kind=ev.EV_NONE, l7=ev.L7_PREFIX, payload_off=0)
    return [event(sport=port, dport=8080, cap_len=len(request), seg_len=len(request), ts_ns=ts, **common) + request,
            event(saddr=PEERS[0], daddr=POD_IP, sport=8080, dport=port, is_reply=1, cap_len=len(response),
                  seg_len=len(response), ts_ns=ts + latency_ns, **common) + response]


def decoded(traces: list[dict], exchanges: list[tuple]) -> list:
    dec, raws, ts = decoder(), [], 2_000_000_000
    for fields in traces:
        raws.append(event(**fields, ts_ns=ts))
        ts += 1000
    for method, path, code, latency_ns, port in exchanges:
        raws += http_events(method, path, code, latency_ns, port, ts)
        ts += 4_000_000_000
    return [flow for raw in raws for flow in dec.decode_encoded(raw)]


def exposition(config: list[str], flows: list) -> bytes:
    registry = CollectorRegistry()
    metrics = FlowMetrics(config, registry, clock=lambda: 0.0)
    for flow in flows:
        metrics.observe(flow)
    assert metrics.errors == 0
    return generate_latest(registry)


@settings(max_examples=60, deadline=None)
@given(st.lists(trace, max_size=40), st.lists(exchange, max_size=6), st.sampled_from(range(len(CONFIGS))))
def test_counting_from_facts_equals_parsing_every_flow(traces, exchanges, config):
    flows = decoded(traces, exchanges)
    assert all(type(flow) is EncodedFlow and flow.facts for flow in flows)
    twice = flows + flows  # the second round replays what the first recorded
    assert exposition(CONFIGS[config], twice) == exposition(CONFIGS[config], [flow.parse() for flow in twice])


def test_a_flow_of_a_known_kind_is_counted_without_parsing():
    syn = decoded([dict(kind=ev.EV_NEW, tcp_flags=0x02, sport=40000, dport=443)], [])[0]
    other_port = decoded([dict(kind=ev.EV_NEW, tcp_flags=0x02, sport=40001, dport=443)], [])[0]
    assert other_port.facts[1:] == syn.facts[1:]
    unparseable = EncodedFlow(b"\xff", b"", 0, "node-1", (), other_port.facts)
    registry = CollectorRegistry()
    metrics = FlowMetrics(["flow", "port-distribution"], registry)
    metrics.observe(syn)
    metrics.observe(unparseable)
    assert metrics.errors == 0
    assert registry.get_sample_value("hubble_port_distribution_total", {"protocol": "TCP", "port": "443"}) == 2


@pytest.mark.parametrize("l7_type", [flow_pb2.REQUEST, flow_pb2.RESPONSE, 0])
@pytest.mark.parametrize("latency_ns", [0, 1, 127, 128, 5_000_000, 2**40])
def test_split_latency_takes_the_field_out_as_protobuf_wrote_it(l7_type, latency_ns):
    http = flow_pb2.HTTP(code=200, method="GET", url="http://api/")
    whole = flow_pb2.Layer7(type=l7_type, latency_ns=latency_ns, http=http).SerializeToString()
    without = flow_pb2.Layer7(type=l7_type, http=http).SerializeToString()
    assert split_latency(whole) == (without, latency_ns)


@pytest.mark.parametrize("raw", [b"\x08", b"\x08\x80", b"\x08\x02\x10", b"\x08\x02\x10\x80\x80"])
def test_split_latency_refuses_what_protobuf_would_not_write(raw):
    assert split_latency(raw) is None
