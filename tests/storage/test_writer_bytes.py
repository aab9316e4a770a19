"""FlowWriter.write_bytes on each backend: flows stored from their bytes as they are, and bytes that are
no valid Flow left out and counted while every other flow of their batch is stored and reads back. Both
kinds of bad bytes: those ClickHouse rejects (garbage where it reads: one would fail its whole batch)
and those it takes (garbage in a field it skips, a string that is not UTF-8: stored, every later read
of those flows would fail to parse them)."""

import logging

from proto.flow import flow_pb2
from proto.wire import string_field, tag
from storage import FlowWriter
from storage.writer.spool import Spool
from tests.storage.flows import BASE_NS, base


def garbage_in(field: str, value: bytes = b"\xff\xff\xff"):
    """Flow bytes with `field` holding `value` (for a message field: no valid message)."""
    def bytes_of(flow: flow_pb2.Flow) -> bytes:
        return flow.SerializeToString() + string_field(tag(flow_pb2.Flow, field), value)
    return bytes_of


MALFORMED = {
    "not protobuf at all": lambda flow: b"\xff\xff\xff\xff",
    "cut short": lambda flow: flow.SerializeToString()[:-3],
    "garbage in l4 (ClickHouse reads it)": garbage_in("l4"),
    "garbage in extensions (ClickHouse skips it)": garbage_in("extensions"),
    "Summary not UTF-8": garbage_in("Summary", b"\xff\xfe"),
}


def test_malformed_flow_bytes_are_left_out_and_every_other_flow_stored(store, tmp_path, caplog):
    good = [base(BASE_NS + i * 1000, sport=10000 + i) for i in range(200)]
    entries = [(f.time.ToNanoseconds(), f.uuid, f.SerializeToString()) for f in good]
    bad = []
    for i, make in enumerate(MALFORMED.values()):
        flow = base(BASE_NS + i * 1000 + 1)
        bad.append(flow.uuid)
        entries.insert(30 * i + 7, (flow.time.ToNanoseconds(), flow.uuid, make(flow)))
    writer = FlowWriter(store, spool_dir=str(tmp_path / "spool"), retry_initial=0.05)
    with caplog.at_level(logging.ERROR):
        assert writer.write_bytes(entries) == 205
        writer.flush()
    stats = writer.stats()
    writer.close()
    assert stats.malformed == 5 and stats.written == 200, stats
    assert stats.retries == stats.spool_batches == stats.rejected_batches == 0, stats
    assert f"5 flows of a batch of 205 are not valid Flow bytes and were left out (5 so far; first, flow {bad[0]}:" \
        in caplog.text
    stored = store.query_flows(limit=None, first=True)
    assert sorted(stored, key=lambda f: f.uuid) == sorted(good, key=lambda f: f.uuid)


def test_bytes_and_messages_in_one_writer(store, tmp_path):
    messages = [base(BASE_NS + i * 1000, sport=20000 + i) for i in range(50)]
    as_bytes = [base(BASE_NS + i * 1000 + 500, sport=30000 + i) for i in range(50)]
    writer = FlowWriter(store, spool_dir=str(tmp_path / "spool"))
    writer.write(messages)
    writer.write_bytes([(f.time.ToNanoseconds(), f.uuid, f.SerializeToString()) for f in as_bytes])
    writer.write_bytes([(as_bytes[0].time.ToNanoseconds(), as_bytes[0].uuid, b"")])  # a duplicate uuid
    writer.close()
    assert writer.stats().duplicates == 1 and writer.stats().malformed == 0
    stored = store.query_flows(limit=None, first=True)
    assert sorted(stored, key=lambda f: f.uuid) == sorted(messages + as_bytes, key=lambda f: f.uuid)


def test_a_damaged_spool_is_set_aside_and_every_valid_flow_in_it_stored(store, tmp_path, caplog):
    """What is on disk can be damaged after the writer wrote it (a disk, a copy, a hand): a batch file
    whose framing breaks goes to rejected/, bad flow bytes in a readable one are left out, and the writer
    goes on replaying and writing."""
    first = [base(BASE_NS + i * 1000, sport=10000 + i) for i in range(100)]
    cut = [base(BASE_NS + i * 1000 + 300, sport=20000 + i) for i in range(10)]
    last = [base(BASE_NS + i * 1000 + 600, sport=30000 + i) for i in range(50)]
    spool = Spool(str(tmp_path / "spool"), 1 << 30)
    spool.append([f.SerializeToString() for f in first[:60]] + [b"\xff\xff\xff\xff"]
                 + [f.SerializeToString() for f in first[60:]] + [garbage_in("l4")(base(BASE_NS + 1))])
    spool.append([f.SerializeToString() for f in cut])
    spool.append([f.SerializeToString() for f in last])
    damaged = spool.files[1]
    spool.close()
    damaged.write_bytes(damaged.read_bytes()[:-3])
    with caplog.at_level(logging.ERROR):
        writer = FlowWriter(store, spool_dir=str(tmp_path / "spool"), retry_initial=0.05)
        assert writer.wait_stored(60)
        later = base(BASE_NS + 900, sport=40000)
        writer.write([later])
        writer.close()
    stats = writer.stats()
    assert (stats.malformed, stats.rejected_batches, stats.spool_batches) == (2, 1, 0), stats
    assert (tmp_path / "spool" / "rejected" / damaged.name).exists()
    assert f"spooled batch {damaged}: the flow at offset" in caplog.text
    assert "2 flows of spooled batch" in caplog.text and "first, flow 61 of the file" in caplog.text
    stored = store.query_flows(limit=None, first=True)
    assert sorted(f.uuid for f in stored) == sorted(f.uuid for f in first + last + [later])
