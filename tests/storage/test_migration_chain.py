"""Migration 10 makes the embedded engine's ingest a chain of views (storage.schema.ingest_chain): flows
written after it are stored exactly as the single view of migration 9 stored them — every column, raw
and which fields raw leaves out — rows written before stay as they were, and a migration cut off half
way completes when run again; on both backends (a server has no ingest view: 10 is recorded only)."""

from storage import FlowWriter, open_store
from storage.schema import ingest_chain
from tests.storage.flows import BASE_NS, base, every_family


def _flows():
    odd = base(BASE_NS + 50)
    odd.source.workloads[0].kind = "apps/v1/Deployment"  # source kept in raw: "kind/name" would not split
    odd.counters.first_seen.FromNanoseconds(BASE_NS)  # counters kept in raw: no column for first_seen
    no_reply = base(BASE_NS + 51)
    no_reply.ClearField("is_reply")
    return every_family() + [odd, no_reply]


def _write(store, flows, spool) -> None:
    with FlowWriter(store, spool_dir=str(spool)) as writer:
        assert writer.write(flows) == len(flows)


def _rows(store) -> list[tuple]:
    names = [n for (n,) in store.backend.rows(
        f"SELECT name FROM system.columns WHERE database = '{store.db}' AND table = 'flows' "
        "AND default_kind = '' ORDER BY name")]
    assert "raw" in names and "raw_stripped" in names
    return store.backend.rows(f"SELECT {', '.join(names)} FROM {store.db}.flows ORDER BY time_ns", binary=True)


def test_flows_after_migration_10_are_stored_as_before(store_url, tmp_path):
    store = open_store(store_url)
    assert store.migrate(upto=9) == [1, 2, 3, 4, 5, 6, 7, 8, 9]
    flows = _flows()
    _write(store, flows, tmp_path / "spool9")
    by_single_view = _rows(store)
    assert len(by_single_view) == len(flows)
    if store.features.protobuf_ingest:  # the single view cut raw: the chain must cut the same
        stripped = [row[-1] for row in store.backend.rows(
            f"SELECT time_ns, raw_stripped FROM {store.db}.flows ORDER BY time_ns")]
        assert 0 < min(stripped) and len(set(stripped)) > 1
    later = [base(BASE_NS + 100 + i) for i in range(3)]
    _write(store, later, tmp_path / "spool-later")
    kept = _rows(store)

    assert store.migrate() == [10] and store.migrate() == []
    assert _rows(store) == kept  # the migration touches no stored row
    store.backend.execute(f"TRUNCATE TABLE {store.db}.flows")
    _write(store, flows, tmp_path / "spool10")
    assert _rows(store) == by_single_view
    for flow in flows:
        assert store.get_flow(flow.uuid) == flow
    edges = store.backend.rows(f"SELECT count() FROM {store.db}.edges_1m")[0][0]
    assert edges > 0  # the aggregate views still fire behind the chain
    store.drop_database()


def test_migration_10_cut_off_half_way_completes_when_run_again(store_url, tmp_path):
    store = open_store(store_url)
    store.migrate(upto=9)
    statements = ingest_chain.statements(store.layout)
    assert bool(statements) == store.features.protobuf_ingest
    for statement in statements[:len(statements) // 2]:  # the single view gone, the chain half made
        store.backend.execute(statement)
    assert store.migrate() == [10]
    flows = _flows()
    _write(store, flows, tmp_path / "spool")
    assert store.count() == len(flows)
    assert store.query_flows(limit=None, first=True) == sorted(flows, key=lambda f: f.time.ToNanoseconds())
    store.drop_database()
