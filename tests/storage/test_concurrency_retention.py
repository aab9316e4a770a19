"""One store shared by a writer and query threads (the relay and UI do this), and retention."""

import threading
import time

from storage import FlowWriter, open_store
from tests.fixtures.clickhouse import random_database
from tests.storage.flows import BASE_NS, base


def test_queries_while_the_writer_inserts(store, tmp_path):
    errors: list[Exception] = []
    stop = threading.Event()

    def query():
        while not stop.is_set():
            try:
                store.query_flows(limit=50)
                store.service_map(BASE_NS, BASE_NS + 10**12)
                store.count()
            except Exception as err:  # collected: the assertion below names it
                errors.append(err)

    readers = [threading.Thread(target=query) for _ in range(3)]
    for r in readers:
        r.start()
    flows = [base(BASE_NS + i * 1000, sport=1024 + i % 60000) for i in range(20_000)]
    with FlowWriter(store, spool_dir=str(tmp_path / "spool"), batch_rows=2000, flush_interval=0.05) as w:
        for i in range(0, len(flows), 1000):
            w.write(flows[i:i + 1000])
    time.sleep(0.2)
    stop.set()
    for r in readers:
        r.join(30)
    assert not errors, errors[:3]
    assert store.count() == 20_000


def test_retention_drops_old_days(chdb_dir, clickhouse_server, tmp_path):
    now_ns = time.time_ns()
    for url in (f"chdb://{chdb_dir}?database={random_database()}&retention_days=3",
                clickhouse_server.store_url(random_database(), retention_days=3)):
        store = open_store(url)
        store.migrate()
        try:
            old = base(now_ns - 10 * 86400 * 10**9)
            new = base(now_ns - 3600 * 10**9)
            with FlowWriter(store, spool_dir=str(tmp_path / random_database())) as writer:
                writer.write([old, new])
            # With TTL the server never keeps the expired flow; without, partitions are dropped.
            assert store.count() == (1 if store.features.ttl else 2)
            dropped = store.enforce_retention(now_ns)
            if not store.features.ttl:
                assert {d.split(":")[0] for d in dropped} == {"flows", "edges_1m", "edges_1h"}
            assert [f.uuid for f in store.query_flows()] == [new.uuid]
            ttl = store.backend.rows(f"SHOW CREATE TABLE {store.db}.flows")[0][0]
            assert ("TTL" in ttl) == store.features.ttl  # the server expires rows itself where it can
        finally:
            store.drop_database()


def test_a_backlog_is_inserted_in_fewer_larger_batches(store, tmp_path):
    """20 batches queued at once (one write() cuts them all before the writer thread can take one):
    the first two go as they are, the rest merge up to max_insert_rows — 6 inserts, every flow once."""
    flows = [base(BASE_NS + i * 1000, sport=1024 + i % 60000) for i in range(20_000)]
    with FlowWriter(store, spool_dir=str(tmp_path / "spool"), batch_rows=1000, max_insert_rows=5000,
                    flush_interval=60) as writer:
        assert writer.write(flows) == 20_000
        writer.flush()
        stats = writer.stats()
    assert (stats.written, stats.batches_written) == (20_000, 6)
    assert store.count() == 20_000
    assert store.get_flow(flows[-1].uuid) == flows[-1]
