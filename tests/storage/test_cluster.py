"""Two clickhouse-server shards (ReplicatedMergeTree, ZooKeeper) behind Distributed tables: the schema
is created ON CLUSTER, writes spread over both shards, queries see both; a third shard added by hand."""

import subprocess

from lab.testbed.clickhouse import ClickHouseServer
from lab.testbed.wait import wait_for
from storage import FlowWriter, open_store
from storage.cluster import ClusterSpec, Replica, server_config
from tests.fixtures.clickhouse import TEST_PASSWORD, TEST_USER, free_port, random_database
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


def _cluster_shards(server) -> int:
    return server.client().execute("SELECT count() FROM system.clusters WHERE cluster = 'flowscope'")[0][0]


def test_a_shard_added_to_a_cluster(clickhouse_cluster, cluster_zookeeper, tmp_path):
    """docs/scaling.md "Adding a shard today", step by step: the new server gets the database's tables
    from an existing server's SHOW CREATE TABLE (clickhouse-client, as the page says), then joins
    remote_servers on every server (reread without a restart); its own writer stores there and reads
    through any server see all three shards."""
    first, second = clickhouse_cluster
    db = random_database()
    store = open_store(first.store_url(db, cluster="flowscope"))
    store.migrate()
    with FlowWriter(store, spool_dir=str(tmp_path / "spool"), batch_rows=500) as writer:
        writer.write([base(BASE_NS + i * 1000, sport=20000 + i) for i in range(1000)])

    third = ClickHouseServer(path=tmp_path / "shard3", tcp_port=free_port(), http_port=free_port(),
                             interserver_port=free_port())
    spec = ClusterSpec("flowscope", tuple((Replica("127.0.0.1", s.tcp_port),) for s in (first, second, third)),
                       (Replica("127.0.0.1", cluster_zookeeper.port),), user=TEST_USER, password=TEST_PASSWORD)
    third.extra_config = server_config(spec, 3, 1)
    third.start()
    try:
        def client(server, query: str = "", script: str = "") -> str:
            """clickhouse-client: one query (its answer as TSVRaw), or a script of them on stdin."""
            options = ["-n"] if script else ["-q", query, "--format", "TSVRaw"]
            return subprocess.run(["clickhouse-client", "--port", str(server.tcp_port), *options],
                                  input=script, capture_output=True, text=True, check=True).stdout

        names = client(first, f"SELECT name FROM system.tables WHERE database = '{db}' "
                              "ORDER BY engine = 'MaterializedView', name").split()
        schema = "".join(client(first, f"SHOW CREATE TABLE {db}.{name}").strip() + ";\n" for name in names)
        client(third, f"CREATE DATABASE {db}")
        client(third, script=schema)
        assert sorted(client(third, f"SHOW TABLES FROM {db}").split()) == sorted(names)
        paths = third.client().execute(f"SELECT zookeeper_path FROM system.replicas WHERE database = '{db}'")
        assert len(paths) == 5 and all(p.startswith(f"/clickhouse/tables/03/{db}/") for (p,) in paths)

        for shard, server in ((1, first), (2, second)):  # rewritten in place: the server rereads it
            config = server.path / "config.xml"
            config.write_text(config.read_text().replace(server.extra_config, server_config(spec, shard, 1)))
        wait_for(lambda: min(_cluster_shards(first), _cluster_shards(second)) == 3, 60,
                 "both servers to reread remote_servers with the third shard")
        assert _cluster_shards(third) == 3

        local = open_store(third.store_url(db, cluster="flowscope", write="local"))
        assert local.migrate() == []  # up to date: the three shards' records together
        with FlowWriter(local, spool_dir=str(tmp_path / "spool3"), batch_rows=500) as writer:
            writer.write([base(BASE_NS + 10**9 + i * 1000, sport=30000 + i) for i in range(300)])
        per_shard = [s.client().execute(f"SELECT count() FROM {db}.flows_local")[0][0]
                     for s in (first, second, third)]
        assert per_shard[2] == 300 and per_shard[0] + per_shard[1] == 1000
        from_second = open_store(second.store_url(db, cluster="flowscope"))
        assert from_second.count() == 1300
        (edge,) = from_second.service_map(BASE_NS, BASE_NS + 60 * 10**9).edges
        assert edge.flows == 1300
    finally:
        third.stop()
