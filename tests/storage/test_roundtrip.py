"""Flows written through FlowWriter come back equal field by field, on both backends."""

import uuid

from google.protobuf import json_format

from proto.flow import flow_pb2
from storage import FlowWriter
from tests.storage.flows import BASE_NS, every_family


def test_every_field_family_round_trips(store, tmp_path):
    flows = every_family()
    with FlowWriter(store, spool_dir=str(tmp_path / "spool"), flush_interval=0.1) as writer:
        assert writer.write(flows) == len(flows)
    got = store.query_flows(since=BASE_NS, until=BASE_NS + 10**9, limit=None)
    assert len(got) == len(flows)
    by_uuid = {f.uuid: f for f in got}
    for original in flows:
        back = by_uuid[original.uuid]
        # Compare as dicts first: a failure names the field that differs.
        assert json_format.MessageToDict(back) == json_format.MessageToDict(original)
        assert back == original
    assert [f.uuid for f in got] == [f.uuid for f in flows]  # oldest first
    assert store.get_flow(flows[3].uuid) == flows[3]


def test_first_last_limit_and_time_range(store, tmp_path):
    flows = every_family()
    with FlowWriter(store, spool_dir=str(tmp_path / "spool")) as writer:
        writer.write(flows)
    last3 = store.query_flows(limit=3)
    assert [f.uuid for f in last3] == [f.uuid for f in flows[-3:]]
    first2 = store.query_flows(limit=2, first=True)
    assert [f.uuid for f in first2] == [f.uuid for f in flows[:2]]
    window = store.query_flows(since=BASE_NS + 2, until=BASE_NS + 4, limit=None)
    assert [f.uuid for f in window] == [f.uuid for f in flows[2:5]]
    assert store.count(since=BASE_NS + 2, until=BASE_NS + 4) == 3


def test_flow_without_time_or_uuid_gets_them_from_the_store(store, tmp_path):
    bare = flow_pb2.Flow(verdict=flow_pb2.FORWARDED, node_name="n")
    with FlowWriter(store, spool_dir=str(tmp_path / "spool")) as writer:
        writer.write([bare])
    (back,) = store.query_flows()
    assert back.uuid and back.time.seconds > 0 and back.verdict == flow_pb2.FORWARDED


def test_duplicate_uuids_are_written_once(store, tmp_path):
    flows = every_family()
    with FlowWriter(store, spool_dir=str(tmp_path / "spool"), batch_rows=4) as writer:
        assert writer.write(flows) == len(flows)
        assert writer.write(flows[:5]) == 0  # a collector replaying after a reconnect
        writer.flush()
        stats = writer.stats()
    assert stats.duplicates == 5 and stats.written == len(flows)
    assert store.count() == len(flows)


def test_flows_page_sorts_pages_and_names_enums(store, tmp_path):
    flows = every_family()
    with FlowWriter(store, spool_dir=str(tmp_path / "spool")) as writer:
        writer.write(flows)
    page = store.flows_page(offset=2, limit=3, sort="time_ns", descending=False)
    assert page.total == len(flows)
    assert [r["uuid"] for r in page.rows] == [f.uuid for f in flows[2:5]]
    drop = store.flows_page(limit=1, sort="verdict", descending=True).rows[0]
    assert drop["verdict"] == "DROPPED" and drop["drop_reason"] == "POLICY_DENIED"
    assert drop["protocol"] == "TCP" and drop["dst_workload"] == "postgres"


def test_stored_uuids_of_a_whole_replayed_batch_are_found(store, tmp_path):
    """The writer's replay asks which of a spooled batch's uuids are stored: a batch of 20,000 uuids
    is more query text than ClickHouse takes at once (max_query_size)."""
    flows = every_family()
    with FlowWriter(store, spool_dir=str(tmp_path / "spool")) as writer:
        writer.write(flows)
    asked = [str(uuid.uuid4()) for _ in range(20_000)] + [f.uuid for f in flows]
    assert store.existing_uuids(asked, BASE_NS, BASE_NS + 10**9) == {f.uuid for f in flows}
