"""The hand-framed encoding parses back to exactly the messages it stands for."""
import random

from google.protobuf import timestamp_pb2
from google.protobuf.internal.encoder import _VarintBytes

from collector.observer import ALL, Observer, parse_request
from collector.observer.wire import encode_batch, encode_flows, encode_lost, encoded_flow
from proto.flow import flow_pb2
from proto.flowscope import flowscope_pb2
from proto.observer import observer_pb2
from proto.wire import TimestampCache, tag, timestamp, varint
from tests.common.filters.sample import dns_flow, make_flow


def test_varint():
    assert [varint(n) for n in (0, 1, 127, 128, 300, 2**64 - 1)] == [
        b"\x00", b"\x01", b"\x7f", b"\x80\x01", b"\xac\x02", b"\xff" * 9 + b"\x01"]
    edges = [2**k + d for k in range(1, 64) for d in (-1, 0, 1)]
    rng = random.Random(5)
    for n in edges + [rng.getrandbits(rng.randint(1, 64)) for _ in range(20000)]:
        assert varint(n) == _VarintBytes(n), n


def test_timestamps_are_the_bytes_protobuf_makes():
    rng = random.Random(7)
    times = [0, 1, 999_999_999, 1_000_000_000, 1_790_000_000_000_000_000, 1_790_000_000_000_000_001]
    times += [1_790_000_000 * 10**9 + nanos for nanos in (2**14 - 1, 2**14, 2**28 - 1, 2**28, 999_999_999)]
    times += sorted(rng.randrange(1_790_000_000 * 10**9, 1_790_000_005 * 10**9) for _ in range(2000))
    cache = TimestampCache()
    for ns in times:
        expected = timestamp_pb2.Timestamp(seconds=ns // 10**9, nanos=ns % 10**9).SerializeToString()
        assert timestamp(ns) == expected and cache.encode(ns) == expected, ns


def test_tags_of_varint_string_and_message_fields():
    assert (tag(flow_pb2.Flow, "time"), tag(flow_pb2.Flow, "uuid"), tag(flow_pb2.Flow, "l7_partial")) == (
        b"\x0a", _VarintBytes(34 << 3 | 2), _VarintBytes(1000001 << 3))
    assert tag(flow_pb2.Layer7, "type") == b"\x08"


def test_encoded_flows_parse_back_and_get_the_observers_name_when_they_have_none():
    flows = [make_flow(), dns_flow(node_name=""), make_flow(uuid="é-ü", node_name="nœud")]
    observer = Observer("node-x")
    seen = []
    observer.hooks.append(seen.append)
    given = [encoded_flow(f.SerializeToString(), f.time.seconds * 10**9 + f.time.nanos, f.node_name,
                          (("", "default"),)) for f in flows]
    published = list(given)
    observer.publish_many(published)
    assert published == given  # the caller's list is left as it was
    named = [flow_pb2.Flow(node_name=f.node_name or "node-x") for f in flows]
    for flow, name in zip(flows, named):
        flow.MergeFrom(name)
    assert seen == flows
    stored = [r for chunk in observer.read(parse_request(observer_pb2.GetFlowsRequest(number=ALL))) for r in chunk]
    assert stored == [observer_pb2.GetFlowsResponse(flow=f, node_name=f.node_name, time=f.time) for f in flows]
    assert observer.namespaces() == [("", "default")] and observer.status().seen_flows == 3


def test_encoded_hooks_get_the_flow_as_it_came_with_its_facts_and_the_observers_name():
    observer = Observer("node-x")
    encoded_seen, parsed_seen = [], []
    observer.encoded_hooks.append(encoded_seen.append)
    observer.hooks.append(parsed_seen.append)
    flow, message = make_flow(node_name=""), make_flow(uuid="m")
    observer.publish_many([encoded_flow(flow.SerializeToString(), 5, "", (), ("template", 1)), message])
    encoded, same_message = encoded_seen
    assert (type(encoded).__name__, encoded.facts, encoded.node_name) == ("EncodedFlow", ("template", 1), "node-x")
    assert encoded.parse() == parsed_seen[0] and parsed_seen[0].node_name == "node-x"
    assert same_message is message and parsed_seen[1] is message


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
