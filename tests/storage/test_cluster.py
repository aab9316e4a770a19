"""Two clickhouse-server shards (ReplicatedMergeTree, ZooKeeper) behind Distributed tables: the schema
is created ON CLUSTER, writes spread over both shards, queries see both."""

from storage import FlowWriter, open_store
from tests.fixtures.clickhouse import random_database
from tests.storage.flows import BASE_NS, base


def test_distributed_over_two_replicated_shards(clickhouse_cluster, tmp_path):
    first, second = clickhouse_cluster
    db = random_database()
    store = open_store(first.store_url(db, cluster="flowscope"))
    assert store.migrate() == [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11]
    for server in (first, second):  # ON CLUSTER created everything on both
        tables = {t for (t,) in server.client().execute(f"SHOW TABLES FROM {db}")}
        assert {"flows", "flows_local", "edges_1m", "edges_1m_local", "edges_1m_mv"} <= tables
        engine = server.client().execute(
            f"SELECT engine FROM system.tables WHERE database = '{db}' AND name = 'flows_local'")
        assert engine == [("ReplicatedReplacingMergeTree",)]
    flows = [base(BASE_NS + i * 1000, sport=20000 + i) for i in range(2000)]
    with FlowWriter(store, spool_dir=str(tmp_path / "spool"), batch_rows=500) as writer:
        writer.write(flows)
    per_shard = [s.client().execute(f"SELECT count() FROM {db}.flows_local")[0][0]
                 for s in (first, second)]
    assert sum(per_shard) == 2000 and min(per_shard) > 600  # cityHash64(uuid) spreads them
    from_second = open_store(second.store_url(db, cluster="flowscope"))
    assert from_second.count() == 2000
    assert len(from_second.query_flows(limit=None)) == 2000
    (edge,) = from_second.service_map(BASE_NS, BASE_NS + 60 * 10**9).edges
    assert (edge.source, edge.target, edge.flows) == ("shop/frontend", "shop/backend", 2000)


def test_migration_9_on_a_cluster_keeps_every_flow_on_its_shard(clickhouse_cluster, tmp_path):
    first, second = clickhouse_cluster
    db = random_database()
    store = open_store(first.store_url(db, cluster="flowscope"))
    assert store.migrate(upto=8) == [1, 2, 3, 4, 5, 6, 7, 8]
    flows = [base(BASE_NS + i * 1000, sport=20000 + i) for i in range(1000)]
    with FlowWriter(store, spool_dir=str(tmp_path / "spool"), batch_rows=500) as writer:
        writer.write(flows)
    uuids_per_shard = [{u for (u,) in s.client().execute(f"SELECT uuid FROM {db}.flows_local")}
                       for s in (first, second)]
    assert store.migrate() == [9, 10, 11]
    for server, uuids in zip((first, second), uuids_per_shard):
        assert {u for (u,) in server.client().execute(f"SELECT uuid FROM {db}.flows_local")} == uuids
        assert {t for (t,) in server.client().execute(f"SHOW TABLES FROM {db}")} >= {"flows", "edges_1m_mv"}
    more = [base(BASE_NS + 10**9 + i * 1000, sport=30000 + i) for i in range(1000)]
    with FlowWriter(store, spool_dir=str(tmp_path / "spool"), batch_rows=500) as writer:
        writer.write(more)
    from_second = open_store(second.store_url(db, cluster="flowscope"))
    assert from_second.query_flows(limit=None, first=True) == flows + more
    (edge,) = from_second.service_map(BASE_NS, BASE_NS + 60 * 10**9).edges
    assert edge.flows == 2000
