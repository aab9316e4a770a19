"""A node's batches as they come off the wire: replayed flows after a reconnect are dropped once, and an
empty FlowBatch (valid protobuf; found by tests/fuzz/fuzz_flowbatch.py) is nothing, not an error."""

from relay.node import NodeClient, Peer
from tests.relay.test_merge import responses


def node_and_runs(**kwargs):
    runs = []
    node = NodeClient(Peer("node-1", "localhost:4244"), lambda _node, run: runs.append(run), lambda *_: None,
                      **kwargs)
    return node, runs


def test_empty_batch_while_replaying_is_skipped():
    node, runs = node_and_runs(since_ns=100, seen=("node-1-50",))
    node._forward([])
    node._forward(responses("node-1", [50, 150]))
    assert [list(r.times) for r in runs] == [[150]], "the replayed flow dropped, the new one kept"
    assert node.info.duplicates == 1 and node.info.forwarded == 1
