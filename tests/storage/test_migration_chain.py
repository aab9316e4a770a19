"""Migrations 10 and 11 remake the embedded engine's ingest (storage.schema.ingest_chain): 10 as a chain
of views, 11 with the envelope's facts worked out from the flow bytes. Flows written after each are
stored exactly as before it — every column, raw and which fields raw leaves out — rows written before
stay as they were, and a migration cut off half way completes when run again; on both backends (a
server has no ingest view: the migrations are recorded only)."""

import pytest

from storage import FlowWriter, open_store
from storage.schema import ingest_chain
from tests.storage.flows import BASE_NS, base, every_family

STATEMENTS = {10: ingest_chain.statements, 11: ingest_chain.slim_statements}


def _flows():
    odd = base(BASE_NS + 50)
    odd.source.workloads[0].kind = "apps/v1/Deployment"  # source kept in raw: "kind/name" would not split
    odd.counters.first_seen.FromNanoseconds(BASE_NS)  # counters kept in raw: no column for first_seen
    no_reply = base(BASE_NS + 51)
    no_reply.ClearField("is_reply")
    host = base(BASE_NS + 52, proto="ICMPv6")
    host.source.Clear()
    host.source.identity = 1  # reserved: host
    host.is_reply.value = False  # set, and false
    return every_family() + [odd, no_reply, host]


def _write(store, flows, spool) -> None:
    with FlowWriter(store, spool_dir=str(spool)) as writer:
        assert writer.write(flows) == len(flows)


def _rows(store) -> list[tuple]:
    names = [n for (n,) in store.backend.rows(
        f"SELECT name FROM system.columns WHERE database = '{store.db}' AND table = 'flows' "
        "AND default_kind = '' ORDER BY name")]
    assert "raw" in names and "raw_stripped" in names
    return store.backend.rows(f"SELECT {', '.join(names)} FROM {store.db}.flows ORDER BY time_ns", binary=True)


@pytest.mark.parametrize("version", [10, 11])
def test_flows_after_the_migration_are_stored_as_before(store_url, tmp_path, version):
    store = open_store(store_url)
    assert store.migrate(upto=version - 1) == list(range(1, version))
    flows = _flows()
    _write(store, flows, tmp_path / "spool-before")
    before = _rows(store)
    assert len(before) == len(flows)
    if store.features.protobuf_ingest:  # raw was cut: the new ingest must cut the same
        stripped = [row[-1] for row in store.backend.rows(
            f"SELECT time_ns, raw_stripped FROM {store.db}.flows ORDER BY time_ns")]
        assert 0 < min(stripped) and len(set(stripped)) > 1
    _write(store, [base(BASE_NS + 100 + i) for i in range(3)], tmp_path / "spool-later")
    kept = _rows(store)

    assert store.migrate(upto=version) == [version] and store.migrate(upto=version) == []
    assert _rows(store) == kept  # the migration touches no stored row
    store.backend.execute(f"TRUNCATE TABLE {store.db}.flows")
    _write(store, flows, tmp_path / "spool-after")
    assert _rows(store) == before
    for flow in flows:
        assert store.get_flow(flow.uuid) == flow
    edges = store.backend.rows(f"SELECT count() FROM {store.db}.edges_1m")[0][0]
    assert edges > 0  # the aggregate views still fire behind the chain
    store.drop_database()


@pytest.mark.parametrize("version", [10, 11])
def test_a_migration_cut_off_half_way_completes_when_run_again(store_url, tmp_path, version):
    store = open_store(store_url)
    store.migrate(upto=version - 1)
    statements = STATEMENTS[version](store.layout)
    assert bool(statements) == store.features.protobuf_ingest
    for statement in statements[:len(statements) // 2]:  # the old ingest gone, the new one half made
        store.backend.execute(statement)
    assert store.migrate(upto=version) == [version]
    flows = _flows()
    _write(store, flows, tmp_path / "spool")
    assert store.count() == len(flows)
    assert store.query_flows(limit=None, first=True) == sorted(flows, key=lambda f: f.time.ToNanoseconds())
    store.drop_database()


def test_flows_given_as_bytes_only_are_stored_on_every_schema(store_url):
    """encode_flows(None, raws): what a relay carrying bytes hands over; a store before 11 parses them."""
    flows = _flows()
    raws = [f.SerializeToString() for f in flows]
    for upto in (9, None):
        store = open_store(store_url)
        store.migrate(upto=upto)
        store.insert_encoded(store.encode_flows(None, raws))
        assert store.query_flows(limit=None, first=True) == sorted(flows, key=lambda f: f.time.ToNanoseconds())
        store.drop_database()
        store.close()
