"""A store written before migration 7 (whole raw) keeps rebuilding its old rows exactly after the
migration, next to new rows whose raw leaves out what the columns hold; on both backends."""

from google.protobuf import json_format

from storage import FlowWriter, open_store
from storage.ingest.columns import flows_to_columns
from tests.storage.flows import BASE_NS, every_family


def test_rows_from_before_migration_7_still_rebuild(store_url, tmp_path):
    store = open_store(store_url)
    backend = store.backend
    assert store.migrate(upto=6) == [1, 2, 3, 4, 5, 6]  # the schema as released before migration 7
    old = every_family()
    store.insert_columns(flows_to_columns(old[:4]))  # how rows were written before
    with FlowWriter(store, spool_dir=str(tmp_path / "spool-old")) as writer:
        writer.write(old[4:])  # the embedded engine: StoredFlow envelopes, as before migration 7
    assert store.migrate() == [7, 8, 9, 10, 11]
    new = every_family(BASE_NS + 100)
    with FlowWriter(store, spool_dir=str(tmp_path / "spool")) as writer:
        writer.write(new)
    got = store.query_flows(limit=None, first=True)
    assert len(got) == len(old) + len(new)
    for back, original in zip(got, old + new):
        assert json_format.MessageToDict(back) == json_format.MessageToDict(original)
        assert back == original
    assert store.get_flow(old[0].uuid) == old[0] and store.get_flow(new[0].uuid) == new[0]
    stripped = dict(backend.rows(f"SELECT uuid, raw_stripped FROM {store.db}.flows"))
    assert all(stripped[f.uuid] == 0 for f in old)
    if store.features.protobuf_ingest:  # the embedded engine cuts raw; the Python column path never
        assert all(stripped[f.uuid] & 3 == 3 for f in new if f.source.pod_name and f.destination.pod_name)
    store.drop_database()
