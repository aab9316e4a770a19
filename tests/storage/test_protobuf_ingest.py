"""The embedded engine's ClickHouse-side protobuf parsing fills exactly the columns that
storage.columns computes in Python (the server path), for every field family and edge case."""

from proto.flow import flow_pb2
from storage import open_store
from storage.columns import NAMES, flows_to_columns
from tests.fixtures.clickhouse import random_database
from tests.storage.flows import BASE_NS, base, every_family


def _edge_cases() -> list[flow_pb2.Flow]:
    host = base(BASE_NS + 50)
    host.source.Clear()
    host.source.identity = 1
    remote = base(BASE_NS + 51, proto="ICMPv6")
    remote.destination.Clear()
    remote.destination.labels.append("reserved:remote-node")
    echo_reply = base(BASE_NS + 52, proto="ICMPv4")
    echo_reply.l4.ICMPv4.type = 0
    unknown_peer = base(BASE_NS + 53)
    unknown_peer.destination.Clear()
    no_l4 = base(BASE_NS + 54)
    no_l4.ClearField("l4")
    no_l4.ClearField("is_reply")
    no_workload = base(BASE_NS + 55)
    no_workload.source.ClearField("workloads")
    return [host, remote, echo_reply, unknown_peer, no_l4, no_workload]


def test_clickhouse_parsing_matches_python_columns(chdb_dir):
    store = open_store(f"chdb://{chdb_dir}?database={random_database()}")
    store.migrate()
    flows = every_family() + _edge_cases()
    select = f"SELECT {', '.join(NAMES)} FROM {store.db}.flows ORDER BY time_ns"
    try:
        store.insert_columns(flows_to_columns(flows))
        by_python = store.backend.rows(select, binary=True)
        store.backend.execute(f"TRUNCATE TABLE {store.db}.flows")
        store.insert_flows(flows, [f.SerializeToString() for f in flows])
        assert store._ingest_schema, "the embedded engine should parse protobuf itself"
        by_clickhouse = store.backend.rows(select, binary=True)
        assert len(by_clickhouse) == len(flows)
        for row_py, row_ch, flow in zip(by_python, by_clickhouse, flows):
            diff = {n: (a, b) for n, a, b in zip(NAMES, row_py, row_ch) if a != b}
            assert not diff, f"flow {flow.uuid}: python vs clickhouse {diff}"
    finally:
        store.drop_database()
