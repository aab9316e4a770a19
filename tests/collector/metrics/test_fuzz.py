"""Any well-formed Flow, however odd its values (unknown enum numbers, negative subtypes, missing
parts), is counted without a handler error."""

from hypothesis import given, settings
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry, generate_latest

from collector.metrics import DEFAULT_METRICS, FlowMetrics
from proto.flow import flow_pb2
from lab.testbed import sample_flows as sf

ALL_METRICS = [*DEFAULT_METRICS[:-2], "httpV2:grpcStatus;sourceContext=pod|ip|dns;destinationContext=app|identity",
               "kafka:sourceContext=workload;destinationContext=reserved-identity"]
METRICS = FlowMetrics(ALL_METRICS, CollectorRegistry())


@st.composite
def odd_flows(draw):
    flow = flow_pb2.Flow()
    flow.CopyFrom(draw(st.sampled_from(sf.shop_round())))
    flow.verdict = draw(st.integers(0, 300))
    flow.drop_reason_desc = draw(st.integers(0, 300))
    flow.event_type.type = draw(st.sampled_from([0, 1, 3, 4, 5, 7, 129, 130, -1, 999]))
    flow.event_type.sub_type = draw(st.integers(-5, 300))
    flow.policy_match_type = draw(st.integers(0, 2**32 - 1))
    flow.traffic_direction = draw(st.integers(0, 5))
    flow.IP.ipVersion = draw(st.integers(0, 5))
    if draw(st.booleans()):
        flow.ClearField("l4")
    if draw(st.booleans()):
        flow.ClearField("is_reply")
    if flow.l7.WhichOneof("record") == "dns":
        flow.l7.dns.rcode = draw(st.integers(0, 2**16))
        flow.l7.dns.qtypes[:] = draw(st.lists(st.sampled_from(["A", "AAAA", "TXT", ""]), max_size=3))
    if flow.l7.WhichOneof("record") == "http":
        flow.l7.http.headers.add(key="grpc-status", value=draw(st.text(max_size=4)))
    flow.l7.type = draw(st.integers(0, 5))
    return flow


@settings(max_examples=300, deadline=None)
@given(odd_flows())
def test_odd_flows_never_break_a_handler(flow):
    METRICS.observe(flow)
    assert METRICS.errors == 0
    generate_latest(METRICS.registry)
