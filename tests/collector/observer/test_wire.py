"""The hand-framed encoding parses back to exactly the messages it stands for."""
from google.protobuf import timestamp_pb2

from collector.observer.wire import encode_batch, encode_flows, encode_lost, varint
from proto.flow import flow_pb2
from proto.flowscope import flowscope_pb2
from proto.observer import observer_pb2
from tests.collector.filters.sample import dns_flow, make_flow


def test_varint():
    assert [varint(n) for n in (0, 1, 127, 128, 300, 2**64 - 1)] == [
        b"\x00", b"\x01", b"\x7f", b"\x80\x01", b"\xac\x02", b"\xff" * 9 + b"\x01"]


def test_encoded_responses_and_batches_parse_back():
    flows = [make_flow(), dns_flow(node_name=""), flow_pb2.Flow(), make_flow(uuid="é-ü", node_name="nœud")]
    expected = [observer_pb2.GetFlowsResponse(flow=f, node_name=f.node_name or "node-x", time=f.time)
                for f in flows]
    for f in flows:
        if not f.HasField("time"):
            expected[flows.index(f)].ClearField("time")
    encoded = encode_flows(flows, "node-x")
    assert [observer_pb2.GetFlowsResponse.FromString(e) for e in encoded] == expected
    stamp = timestamp_pb2.Timestamp(seconds=1_700_000_000, nanos=5)
    lost = flow_pb2.LostEvent(source=flow_pb2.HUBBLE_RING_BUFFER, num_events_lost=9)
    encoded.append(encode_lost(lost, "node-x", stamp.SerializeToString()))
    expected.append(observer_pb2.GetFlowsResponse(lost_events=lost, node_name="node-x", time=stamp))
    batch = flowscope_pb2.FlowBatch.FromString(encode_batch(encoded))
    assert list(batch.responses) == expected
    assert flowscope_pb2.FlowBatch.FromString(encode_batch([])) == flowscope_pb2.FlowBatch()
