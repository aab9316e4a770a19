"""Scale-out on ClickHouse itself: two relays, each writing its own shard's local tables (`write=local`),
two collectors, a two-shard cluster. One relay restarts and one shard stops mid-stream; afterwards every
flow is stored exactly once and a read through either server sees all of them."""

from __future__ import annotations

import threading
import time

import pytest

from lab.testbed.wait import wait_for
from relay import Peer
from storage import FlowWriter, ShardUnavailable, StorageURLError, open_store, parse_url
from storage.cluster import unreachable
from tests.fixtures.clickhouse import random_database
from tests.relay.nodes import make_flow


class Publisher:
    """Publishes flows timed "now" to a collector from a thread, 50 every 50 ms, until stopped."""

    def __init__(self, node) -> None:
        self.node = node
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        i = 0
        while not self._stop.wait(0.05):
            now = time.time_ns()
            self.node.publish(*[make_flow(now + k, f"{self.node.name}-{(i + k) % 7}", "backend-0")
                                for k in range(50)])
            i += 50

    def stop(self) -> set[str]:
        self._stop.set()
        self._thread.join()
        return {f.uuid for f in self.node.published}


def shard_rows(server, db: str) -> tuple[int, set[str]]:
    """(rows, distinct uuids) in a server's own flows_local. A merge may have collapsed duplicates by
    then (ReplacingMergeTree): the views' sums, which count every insert, are the check for those."""
    rows = server.client().execute(f"SELECT toString(uuid) FROM {db}.flows_local")
    return len(rows), {u for (u,) in rows}


def test_two_relays_into_two_shards_store_every_flow_once(clickhouse_cluster, relay_factory, node_factory,
                                                          tmp_path):
    first, second = clickhouse_cluster
    db = random_database()
    urls = [s.store_url(db, cluster="flowscope", write="local") for s in (first, second)]
    stores = [open_store(url) for url in urls]
    for store in stores:  # each relay migrates on start, as `flowscope relay` does
        store.migrate()
    nodes = [node_factory("node-a"), node_factory("node-b")]

    def start_relay(i: int):
        store = open_store(urls[i])
        assert store.migrate() == []  # up to date: no ON CLUSTER DDL (it would wait for a shard down)
        writer = FlowWriter(store, flush_interval=0.2, spool_dir=str(tmp_path / f"spool{i}"), retry_max=0.5)
        running = relay_factory(store=store, writer=writer)
        running.relay.add_peer(Peer(nodes[i].name, nodes[i].address))
        return running, writer

    relays = [start_relay(0), start_relay(1)]
    publishers = [Publisher(node) for node in nodes]
    try:
        wait_for(lambda: all(w.stats().written >= 1000 for _, w in relays), timeout=60,
                 what="both relays storing")

        second.stop()  # shard 2 down mid-stream: relay B spools, relay A goes on
        wait_for(lambda: relays[1][1].stats().spool_batches > 0, timeout=60, what="relay B spooling")
        written = relays[0][1].stats().written
        wait_for(lambda: relays[0][1].stats().written > written + 500, timeout=60,
                 what="relay A still storing")

        with pytest.raises(ShardUnavailable) as err:  # reads through the Distributed table need every shard
            stores[0].count()
        assert f"shard 2 (127.0.0.1:{second.tcp_port}) unreachable (Connection refused)" in str(err.value)
        assert "skip_unavailable_shards=1" in str(err.value)
        partial = open_store(first.store_url(db, cluster="flowscope", skip_unavailable_shards=1))
        status = partial.status()
        assert status["shards"] == {1: "up", 2: "unreachable"}
        assert 0 < status["flows"] == partial.count() <= shard_rows(first, db)[0]

        running, writer = relays[0]  # relay A restarts mid-stream, while shard 2 is still down
        running.stop()
        writer.close()
        relays[0] = start_relay(0)
        written = relays[0][1].stats().written
        wait_for(lambda: relays[0][1].stats().written > written + 500, timeout=60,
                 what="the restarted relay A storing")

        second.start()  # relay B replays its spool, both relays stream on with every shard up
        written = [w.stats().written for _, w in relays]
        wait_for(lambda: all(w.stats().written > n + 500 for (_, w), n in zip(relays, written)), timeout=60,
                 what="both relays storing again")
        published = [p.stop() for p in publishers]
        everything = published[0] | published[1]
        for i, (running, writer) in enumerate(relays):
            wait_for(lambda: writer.wait_stored(1) and shard_rows((first, second)[i], db)[1] >= published[i],
                     timeout=120, what=f"relay {'AB'[i]}: every flow of node-{'ab'[i]} stored")

        for server, uuids in zip((first, second), published):  # each relay wrote its own shard only, once
            rows, stored = shard_rows(server, db)
            assert stored == uuids and rows == len(uuids)
        for server in (first, second):  # a read through either server sees every flow, and only once
            reader = open_store(server.store_url(db, cluster="flowscope"))
            assert reader.count() == len(everything)
            assert {f.uuid for f in reader.query_flows(limit=None)} == everything
            assert reader.status()["shards"] == {1: "up", 2: "up"}
            # the views count every insert (a merge never undoes one): every flow inserted once
            edges = reader.service_map(min(f.time.ToNanoseconds() for n in nodes for f in n.published),
                                       time.time_ns()).edges
            assert sum(e.flows for e in edges) == len(everything)
    finally:
        for publisher in publishers:
            publisher.stop()
        for running, writer in relays:
            running.stop()
            writer.close(5)


def test_write_local_and_skip_unavailable_shards_need_a_cluster():
    url = parse_url("clickhouse://h/db?cluster=flowscope&write=local&skip_unavailable_shards=1")
    assert url.write_local and url.skip_unavailable_shards
    assert not parse_url("clickhouse://h/db?cluster=flowscope").write_local
    for query, words in (("write=local", "write=local needs cluster=NAME"),
                         ("skip_unavailable_shards=1", "skip_unavailable_shards needs cluster=NAME"),
                         ("cluster=c&write=shard", "write='shard', expected local or distributed")):
        with pytest.raises(StorageURLError) as err:
            parse_url(f"clickhouse://h/db?{query}")
        assert words in str(err.value)


def test_unreachable_names_the_shards_an_error_names():
    message = ("Code: 279. DB::NetException: All connection tries failed. Log: \n\nCode: 210, "
               "e.displayText() = DB::NetException: Connection refused (ch-2.example:9000), e.what() = ...\n")
    shards = [(1, "ch-1.example", "10.0.0.1", 9000), (2, "ch-2.example", "10.0.0.2", 9000)]
    assert unreachable(message, shards) == (["shard 2 (ch-2.example:9000)"], "Connection refused")
    by_address = message.replace("ch-2.example", "10.0.0.2")
    assert unreachable(by_address, shards) == (["shard 2 (ch-2.example:9000)"], "Connection refused")
    assert unreachable("Code: 279. All connection tries failed.", shards) == ([], "")
