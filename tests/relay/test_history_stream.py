"""History from storage is streamed: read a page at a time (minute spans, keyset within a busy minute),
merged with the relay's memory in time order, every flow once; `--last N` gives exactly the newest N
across storage and memory; storage failing mid-way is told to the client in-band."""

import time

import pytest
from google.protobuf import timestamp_pb2

from collector.observer.request import ALL, parse_request
from proto.observer import observer_pb2
from lab.testbed.wait import wait_for
from relay import Peer
from relay.flows import HISTORY_CHUNK, history_flows
from storage.errors import StorageError
from storage.queries.paging import flow_pages
from tests.relay.nodes import make_flow, stub

NS = 1_000_000_000


class CountingStore:
    """The real store, with every page the relay reads from it counted (and, when asked, a failure
    after `fail_after` pages)."""

    def __init__(self, store, fail_after: int | None = None) -> None:
        self._store, self.pages, self.rows, self.fail_after = store, 0, [], fail_after

    def __getattr__(self, name):
        return getattr(self._store, name)

    def _rebuilt(self, sql: str):
        if self.fail_after is not None and self.pages >= self.fail_after:
            raise StorageError("chdb: the server went away (test)")
        flows = self._store._rebuilt(sql)
        self.pages += 1
        self.rows.append(len(flows))
        return flows


def stored(relay_store, count: int, start_ns: int, step_ns: int, prefix: str = "f"):
    flows = [make_flow(start_ns + i * step_ns, f"{prefix}-{i}", "db-0") for i in range(count)]
    relay_store.store.insert_flows(flows, [f.SerializeToString() for f in flows])
    return flows


def since(ns: int) -> timestamp_pb2.Timestamp:
    stamp = timestamp_pb2.Timestamp()
    stamp.FromNanoseconds(ns)
    return stamp


def test_a_long_window_streams_in_bounded_pages_every_flow_once_in_order(relay_factory, relay_store):
    now = time.time_ns()
    # 2 hours of flows, and one minute far busier than a page (keyset paging within that minute).
    flows = stored(relay_store, 5_000, now - 7200 * NS, 7200 * NS // 5_000)
    flows += stored(relay_store, 3 * HISTORY_CHUNK + 17, now - 1800 * NS, 1_000, prefix="burst")
    counting = CountingStore(relay_store.store)
    running = relay_factory(store=counting)
    answer = list(stub(running.address).GetFlows(
        observer_pb2.GetFlowsRequest(since=since(now - 3 * 3600 * NS), number=ALL), timeout=120))
    expected = sorted(flows, key=lambda f: (f.time.ToNanoseconds(), f.uuid))
    assert [r.flow.uuid for r in answer] == [f.uuid for f in expected]
    assert max(counting.rows) <= HISTORY_CHUNK
    assert counting.pages >= len(flows) // HISTORY_CHUNK


def test_history_is_read_lazily(relay_store):
    now = time.time_ns()
    stored(relay_store, 4 * HISTORY_CHUNK, now - 3600 * NS, 3600 * NS // (4 * HISTORY_CHUNK))
    counting = CountingStore(relay_store.store)
    request = observer_pb2.GetFlowsRequest(since=since(now - 2 * 3600 * NS), number=ALL)
    stream = history_flows(parse_request(request), request, [], counting)
    first = [next(stream) for _ in range(10)]
    assert len(first) == 10 and counting.pages == 1  # one page read for the first flows, not the window


def test_last_n_is_the_newest_n_of_storage_and_memory(node_factory, relay_factory, relay_store):
    now = time.time_ns()
    old = stored(relay_store, 3_000, now - 4000 * NS, NS)  # all older than the node's flows
    node = node_factory("node-a")
    recent = [make_flow(now - (50 - i) * NS, f"recent-{i}", "db-0") for i in range(50)]
    node.publish(*recent)
    running = relay_factory(store=relay_store.store)
    running.relay.add_peer(Peer(node.name, node.address))
    wait_for(lambda: running.relay.status().num_flows == 50, what="the node's 50 flows in memory")
    answer = list(stub(running.address).GetFlows(observer_pb2.GetFlowsRequest(number=120), timeout=60))
    assert [r.flow.uuid for r in answer] == [f.uuid for f in (old + recent)[-120:]]


def test_storage_failing_mid_way_is_told_in_band(relay_factory, relay_store):
    now = time.time_ns()
    stored(relay_store, 3 * HISTORY_CHUNK, now - 3600 * NS, NS)
    failing = CountingStore(relay_store.store, fail_after=1)
    running = relay_factory(store=failing)
    answer = list(stub(running.address).GetFlows(
        observer_pb2.GetFlowsRequest(since=since(now - 2 * 3600 * NS), number=ALL), timeout=60))
    flows = [r for r in answer if r.HasField("flow")]
    assert 0 < len(flows) == failing.rows[0]  # the page read before the failure
    status = [r.node_status for r in answer if r.HasField("node_status")]
    assert len(status) == 1 and "history incomplete: storage unavailable" in status[0].message
    assert answer[-1].HasField("node_status")


def test_a_bad_page_size_is_refused(relay_store):
    with pytest.raises(StorageError, match="page_rows=0"):
        next(flow_pages(relay_store.store, page_rows=0))
