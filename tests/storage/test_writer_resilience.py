"""The writer against a ClickHouse server that dies: every flow arrives exactly once; a full spool
disk is a clear error and loses nothing."""

import subprocess
import threading
import time

import pytest

from storage import FlowWriter, SpoolFullError, open_store
from lab.testbed.wait import wait_for
from tests.fixtures.clickhouse import random_database
from tests.storage.flows import BASE_NS, base


def make_flows(n: int, t0: int = BASE_NS) -> list:
    return [base(t0 + i * 1000, sport=10000 + i % 50000) for i in range(n)]


def _count(server, db):
    return server.client().execute(f"SELECT count(), uniqExact(uuid) FROM {db}.flows")[0]


def test_server_killed_mid_stream_every_flow_once(own_server, tmp_path):
    db = random_database()
    store = open_store(f"{own_server.url}/{db}?connect_timeout=1")
    store.migrate()
    flows = make_flows(30_000)
    writer = FlowWriter(store, spool_dir=str(tmp_path / "spool"), batch_rows=1000, flush_interval=0.05,
                        retry_initial=0.1, retry_max=0.5)
    killed = threading.Event()

    def produce():
        for i in range(0, len(flows), 500):
            if i == 10_000:
                killed.wait(60)  # the rest of the stream arrives while the server is down, however slow we are
            writer.write(flows[i:i + 500])
            time.sleep(0.04)  # a steady stream of ~12,000 flows/s

    producer = threading.Thread(target=produce)
    producer.start()
    wait_for(lambda: writer.stats().written >= 5000, 60, "5,000 flows written", interval=0.01)
    own_server.kill()  # SIGKILL mid-stream: inserts in flight are cut off
    killed.set()
    wait_for(lambda: writer.stats().spool_batches > 0, 60, "batches spooled while the server is down")
    own_server.start()
    producer.join(60)
    assert writer.wait_stored(120)
    stats = writer.stats()
    writer.close()
    assert _count(own_server, db) == (30_000, 30_000), stats
    assert stats.written == 30_000 and stats.retries > 0 and stats.spool_bytes == 0, stats


def test_spool_survives_a_writer_restart(own_server, tmp_path):
    db = random_database()
    store = open_store(f"{own_server.url}/{db}?connect_timeout=1")
    store.migrate()
    own_server.kill()
    writer = FlowWriter(store, spool_dir=str(tmp_path / "spool"), retry_initial=0.1, retry_max=0.2)
    writer.write(make_flows(2000))
    writer.flush()
    writer.close()  # the server is down: the flows stay spooled on disk
    own_server.start()
    again = FlowWriter(store, spool_dir=str(tmp_path / "spool"))
    assert again.wait_stored(60)
    again.close()
    assert _count(own_server, db) == (2000, 2000)


@pytest.mark.root
def test_full_spool_disk_is_a_clear_error_and_nothing_is_lost(own_server, tmp_path):
    spool = tmp_path / "tiny"
    spool.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(spool)],
                             capture_output=True, text=True)
    assert mounted.returncode == 0, f"mounting a tmpfs for the spool needs root: {mounted.stderr}"
    try:
        db = random_database()
        store = open_store(f"{own_server.url}/{db}?connect_timeout=1")
        store.migrate()
        own_server.kill()
        writer = FlowWriter(store, spool_dir=str(spool / "spool"), batch_rows=500, flush_interval=0.05,
                            retry_initial=0.1, retry_max=0.2)
        taken = 0
        with pytest.raises(SpoolFullError) as err:
            for i in range(200):
                taken += writer.write(make_flows(500, BASE_NS + i * 10**9))
                writer.flush()
        message = str(err.value)
        assert "cannot write" in message and "No space left on device" in message
        assert "nothing was dropped" in message and str(spool / "spool") in message
        own_server.start()
        assert writer.wait_stored(120)
        writer.close()
        assert _count(own_server, db) == (taken, taken)
    finally:
        subprocess.run(["umount", "-l", str(spool)], check=False)
