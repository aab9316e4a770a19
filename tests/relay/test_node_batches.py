"""A node's batches as they come off the wire: replayed flows after a reconnect are dropped once, an
empty FlowBatch (valid protobuf; found by tests/fuzz/fuzz_flowbatch.py) is nothing, not an error, and
a malformed response is left out, counted and logged while every other flow of its batch goes on."""

import logging

from proto.flowscope import flowscope_pb2
from relay.node import NodeClient, Peer
from relay.wire import FlowEntry, single_response_batch
from tests.relay.test_merge import responses


def node_and_runs(**kwargs):
    runs = []
    node = NodeClient(Peer("node-1", "localhost:4244"), lambda _node, run: runs.append(run), lambda *_: None,
                      **kwargs)
    return node, runs


def batch(items) -> bytes:
    return flowscope_pb2.FlowBatch(responses=items).SerializeToString()


def test_empty_batch_while_replaying_is_skipped():
    node, runs = node_and_runs(since_ns=100, seen=("node-1-50",))
    node._forward(b"")
    node._forward(batch(responses("node-1", [50, 150])))
    assert [list(r.times) for r in runs] == [[150]], "the replayed flow dropped, the new one kept"
    assert node.info.duplicates == 1 and node.info.forwarded == 1


def test_a_malformed_response_costs_only_itself(caplog):
    node, runs = node_and_runs()
    good = [r.SerializeToString() for r in responses("node-1", [10, 20, 30])]
    truncated_flow = good[1][:10]  # a flow field whose length runs past the response's end
    framed = b"".join(single_response_batch(r) for r in (good[0], truncated_flow, good[2]))
    with caplog.at_level(logging.ERROR, logger="relay.node"):
        node._forward(framed)
    (run,) = runs
    assert [e.uuid for e in run.responses] == ["node-1-10", "node-1-30"]
    assert all(type(e) is FlowEntry for e in run.responses)
    assert node.info.malformed == 1 and node.info.forwarded == 2
    assert "node node-1 (localhost:4244) sent 1 malformed responses" in caplog.text
    assert "response 1" in caplog.text


def test_bytes_that_are_no_batch_at_all_are_counted_not_raised():
    node, runs = node_and_runs()
    node._forward(b"\xff\xff\xff")
    assert runs == [] and node.info.malformed == 1
