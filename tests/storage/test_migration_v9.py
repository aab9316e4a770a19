"""Migration 9 makes the flows table again (uuid as UUID, ts an ALIAS, destination in the sort key): a
store written at schema 8 keeps every row exactly, the views keep aggregating into the same tables, and
a migration that crashed half way resumes without losing or doubling a row; on both backends."""

import uuid

import pytest
from google.protobuf import json_format

from proto.flow import flow_pb2
from storage import FlowWriter, open_store
from storage.schema.migrations import flows_v9
from storage.ingest.columns import flows_to_columns
from tests.storage.flows import BASE_NS, base, every_family

MINUTE = 60 * 10**9


def odd_uuids(t0: int, unique_once: bool = False) -> list[flow_pb2.Flow]:
    """Flows whose uuid a UUID column cannot hold as text, next to the collector's and Hubble's;
    `unique_once`: also the zero uuid and a flow without uuid (the store gives it one)."""
    prefix = str(uuid.uuid4())[:24]
    uuids = [f"{prefix}{1:012x}", f"{prefix}{2:012x}",  # a collector: per-process prefix + counter
             str(uuid.uuid4()).upper(), "{" + str(uuid.uuid4()) + "}", f"not-a-uuid-{t0}", "x" * 300 + str(t0),
             str(uuid.uuid4()) + "\n", str(uuid.uuid4())]
    if unique_once:
        uuids += ["00000000-0000-0000-0000-000000000000", ""]
    flows = []
    for i, u in enumerate(uuids):
        f = base(t0 + i, sport=30000 + i)
        f.uuid = u
        flows.append(f)
    return flows


def assert_same(got: list[flow_pb2.Flow], want: list[flow_pb2.Flow]) -> None:
    assert len(got) == len(want)
    for back, original in zip(got, want):
        assert json_format.MessageToDict(back) == json_format.MessageToDict(original)
        assert back == original


def write(store, flows, spool) -> None:
    with FlowWriter(store, spool_dir=str(spool)) as writer:
        assert writer.write(flows) == len(flows)


@pytest.fixture
def store8(store_url, tmp_path):
    """A store as schema 8 left it, holding flows written both ways (writer, Python columns)."""
    store = open_store(store_url)
    assert store.migrate(upto=8) == [1, 2, 3, 4, 5, 6, 7, 8]
    write(store, every_family() + odd_uuids(BASE_NS + 100, unique_once=True), tmp_path / "spool8")
    store.insert_columns(flows_to_columns(odd_uuids(BASE_NS + 200)))
    yield store
    store.drop_database()


def test_schema_8_store_migrated_to_9_keeps_every_row(store8, tmp_path):
    store = store8
    before = store.query_flows(limit=None, first=True)
    window = (BASE_NS, BASE_NS + 10 * MINUTE)
    map_before = store.service_map(*window)
    assert len(before) == 9 + 10 + 8 and store.migrate() == [9, 10, 11] and store.migrate() == []
    assert_same(store.query_flows(limit=None, first=True), before)
    for flow in before:
        assert store.get_flow(flow.uuid) == flow
        assert store.count([flow_pb2.FlowFilter(uuid=[flow.uuid])]) == 1
    assert store.service_map(*window) == map_before
    columns = dict(store.backend.rows(
        f"SELECT name, default_kind FROM system.columns WHERE database = '{store.db}' AND table = 'flows'"))
    assert columns["ts"] == columns["uuid"] == "ALIAS" and columns["uuid_bin"] == ""
    split = dict(store.backend.rows(f"SELECT uuid, uuid_str FROM {store.db}.flows"))
    assert {u for u, text in split.items() if text} == {
        f.uuid for f in before if f.uuid != f.uuid.lower() or len(f.uuid) != 36}
    tables = {t for (t,) in store.backend.rows(f"SELECT name FROM system.tables WHERE database = '{store.db}'")}
    assert not tables & {"flows_v8", "flows_v9"}

    # New flows go into the new table (both write paths) and through the recreated views.
    new = odd_uuids(BASE_NS + 300) + every_family(BASE_NS + 400)
    write(store, new, tmp_path / "spool9")
    columns_path = odd_uuids(BASE_NS + 500)
    store.insert_columns(flows_to_columns(columns_path))
    assert_same(store.query_flows(since=BASE_NS + 300, limit=None, first=True), new + columns_path)
    grown = {e.key: e.flows for e in store.service_map(*window).edges}
    old = {e.key: e.flows for e in map_before.edges}
    frontend_backend = ("shop/frontend", "shop/backend", 8080, "TCP", "FORWARDED")
    assert grown[frontend_backend] == old[frontend_backend] + 3 + 8 + 8
    assert store.http_red(*window)[0].requests == 2


@pytest.mark.parametrize("crash", ["partial copy", "between the renames", "before dropping the old table"])
def test_migration_9_resumes_after_a_crash(store8, crash):
    store, backend, layout = store8, store8.backend, store8.layout
    before = store.query_flows(limit=None, first=True)
    for statement in flows_v9.table_statements(layout, "flows_v9"):
        backend.execute(statement)
    names, select = flows_v9.copy_select()
    limit = " LIMIT 5" if crash == "partial copy" else ""
    backend.execute(f"INSERT INTO {store.db}.flows_v9 ({names}) SELECT {select} FROM {store.db}.flows{limit}")
    if crash == "between the renames":
        backend.execute(f"RENAME TABLE {store.db}.flows TO {store.db}.flows_v8")
    elif crash == "before dropping the old table":
        backend.execute(f"RENAME TABLE {store.db}.flows TO {store.db}.flows_v8, {store.db}.flows_v9 TO "
                        f"{store.db}.flows")
    assert store.migrate() == [9, 10, 11]
    assert_same(store.query_flows(limit=None, first=True), before)
    assert store.count() == len(before)
    tables = {t for (t,) in backend.rows(f"SELECT name FROM system.tables WHERE database = '{store.db}'")}
    assert not tables & {"flows_v8", "flows_v9"}
    assert {"edges_1m_mv", "edges_1h_mv", "http_1m_mv", "dns_1m_mv"} <= tables
