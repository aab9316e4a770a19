"""The committed protobuf code matches the .proto files, and the wire contract with Hubble holds."""

import subprocess
import sys

from google.protobuf import descriptor_pb2, descriptor_pool, json_format, message_factory

from proto.flow import flow_pb2
from proto.observer import observer_pb2


def test_generated_code_is_up_to_date():
    result = subprocess.run([sys.executable, "-m", "proto.generate", "--check"],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def test_field_numbers_match_hubble():
    fields = {f.name: f.number for f in flow_pb2.Flow.DESCRIPTOR.fields}
    assert fields["time"] == 1 and fields["verdict"] == 2 and fields["IP"] == 5 and fields["l4"] == 6
    assert fields["source"] == 8 and fields["destination"] == 9 and fields["Type"] == 10
    assert fields["l7"] == 15 and fields["event_type"] == 19 and fields["traffic_direction"] == 22
    assert fields["trace_observation_point"] == 24 and fields["drop_reason_desc"] == 25
    assert fields["is_reply"] == 26 and fields["uuid"] == 34 and fields["Summary"] == 100000
    assert fields["egress_denied_by"] == 21004 and fields["ingress_denied_by"] == 21005
    assert all(n < 1_000_000 or name in {"counters", "l7_partial", "kernel_drop_reason", "l7_tls"}
               for name, n in fields.items())
    request = {f.name: f.number for f in observer_pb2.GetFlowsRequest.DESCRIPTOR.fields}
    assert request == {"number": 1, "follow": 3, "blacklist": 5, "whitelist": 6, "since": 7,
                       "until": 8, "first": 9, "field_mask": 10, "experimental": 999,
                       "extensions": 150000}
    events = {f.name: f.number for f in observer_pb2.GetAgentEventsRequest.DESCRIPTOR.fields}
    assert events["follow"] == 2


def test_flowscope_fields_are_skipped_by_a_hubble_reader():
    """A reader that knows only Hubble's fields parses our flows and prints them without ours."""
    hubble_file = descriptor_pb2.FileDescriptorProto(name="hubble_subset.proto", package="hubble",
                                                     syntax="proto3")
    message = hubble_file.message_type.add(name="Flow")
    message.field.add(name="node_name", number=11, type=9, label=1)
    message.field.add(name="uuid", number=34, type=9, label=1)
    pool = descriptor_pool.DescriptorPool()
    pool.Add(hubble_file)
    hubble_flow = message_factory.GetMessageClass(pool.FindMessageTypeByName("hubble.Flow"))

    flow = flow_pb2.Flow(node_name="node-a", uuid="u1", l7_partial=True)
    flow.counters.bytes_forward = 1234
    parsed = hubble_flow.FromString(flow.SerializeToString())
    assert json_format.MessageToDict(parsed, preserving_proto_field_name=True) == {
        "node_name": "node-a", "uuid": "u1"}


def test_json_uses_proto_field_names():
    response = observer_pb2.GetFlowsResponse(node_name="n1")
    response.flow.verdict = flow_pb2.FORWARDED
    response.flow.traffic_direction = flow_pb2.EGRESS
    response.flow.source.pod_name = "frontend-1"
    text = json_format.MessageToJson(response, preserving_proto_field_name=True)
    assert '"verdict": "FORWARDED"' in text and '"pod_name": "frontend-1"' in text
    assert '"traffic_direction": "EGRESS"' in text and '"node_name": "n1"' in text
