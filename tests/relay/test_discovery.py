"""Finding the collectors: --peer values, the lab's state file, and a peer.Peer Notify stream."""

import threading

import grpc
import pytest

from lab.state import HostState, LabState
from proto.observer import observer_pb2
from proto.peer import peer_pb2, peer_pb2_grpc
from proto.relay import relay_pb2
from relay import Peer, PeerWatcher, parse_peer, peers_from_lab
from relay.discovery import PeerSpecError
from lab.testbed.wait import wait_for
from tests.relay.nodes import make_flow, read_until_cancelled, stub


@pytest.mark.parametrize("spec, expected", [
    ("node-a=10.0.0.1:4244", Peer("node-a", "10.0.0.1:4244")),
    ("node-b=:4250", Peer("node-b", "localhost:4250")),
    ("localhost:4244", Peer("localhost:4244", "localhost:4244")),
    ("n=[fd00::1]:4244", Peer("n", "[fd00::1]:4244")),
    ("n=unix:///run/flowscope/observer.sock", Peer("n", "unix:///run/flowscope/observer.sock")),
])
def test_parse_peer(spec, expected):
    assert parse_peer(spec) == expected


@pytest.mark.parametrize("spec, message", [
    ("node-a=10.0.0.1", r"collector address '10\.0\.0\.1': expected host:port"),
    ("=localhost:4244", "empty node name"),
    ("n=host:port", "expected host:port"),
])
def test_bad_peer_is_named(spec, message):
    with pytest.raises(PeerSpecError, match=message):
        parse_peer(spec)


def test_lab_nodes_map_to_collectors_by_port(tmp_path):
    pod = dict(kind="pod", netns="ns", device="dev", ipv4="10.244.0.5", ipv6="fd00:10:244::5")
    state = LabState(name="twonode", run_dir=str(tmp_path), nodes=["node-a", "node-b"], path=str(tmp_path / "s.json"),
                     hosts=[HostState(name="p1", node="node-a", **pod), HostState(name="p2", node="node-b", **pod)])
    state.save()
    assert peers_from_lab(state.path, base_port=5000) == [Peer("node-a", "localhost:5000"),
                                                           Peer("node-b", "localhost:5001")]


def test_relay_discovers_nodes_from_another_relays_peer_service(node_factory, relay_factory):
    a, b = node_factory("node-a"), node_factory("node-b")
    a.publish(make_flow(1_700_000_000_000_000_000, "a-1", "x-1"))
    b.publish(make_flow(1_700_000_000_001_000_000, "b-1", "x-1"))
    upstream = relay_factory()
    upstream.relay.add_peer(Peer(a.name, a.address))

    # What tools see on the relay's Peer service: the nodes it follows, then changes.
    notify = peer_pb2_grpc.PeerStub(grpc.insecure_channel(upstream.address)).Notify(peer_pb2.NotifyRequest())
    first = next(notify)
    assert (first.name, first.address, first.type) == ("node-a", a.address, peer_pb2.PEER_ADDED)

    downstream = relay_factory()
    watcher = PeerWatcher(upstream.address, downstream.relay.add_peer, downstream.relay.remove_peer).start()
    try:
        wait_for(lambda: downstream.relay.status().num_connected_nodes.value == 1, what="node-a via Notify")
        upstream.relay.add_peer(Peer(b.name, b.address))
        added = next(notify)
        assert (added.name, added.type) == ("node-b", peer_pb2.PEER_ADDED)
        wait_for(lambda: downstream.relay.status().seen_flows == 2, what="flows of both nodes")

        events: list[observer_pb2.GetFlowsResponse] = []
        follow = stub(downstream.address).GetFlows(observer_pb2.GetFlowsRequest(follow=True))
        threading.Thread(target=read_until_cancelled, args=(follow, events), daemon=True).start()
        wait_for(lambda: downstream.relay.hub.followers == 1, what="the follow stream subscribed")
        upstream.relay.remove_peer("node-a")
        removed = next(notify)
        notify.cancel()
        assert (removed.name, removed.type) == ("node-a", peer_pb2.PEER_DELETED)
        wait_for(lambda: [n.name for n in downstream.relay.nodes()] == ["node-b"], what="node-a removed")
        nodes = stub(downstream.address).GetNodes(observer_pb2.GetNodesRequest()).nodes
        assert [(n.name, n.state) for n in nodes] == [("node-b", relay_pb2.NODE_CONNECTED)]
        wait_for(lambda: any(e.HasField("node_status") for e in events), what="the node-gone event")
        follow.cancel()
        gone = [e.node_status for e in events if e.HasField("node_status")]
        assert [(g.state_change, list(g.node_names)) for g in gone] == [(relay_pb2.NODE_GONE, ["node-a"])]
    finally:
        watcher.stop()
