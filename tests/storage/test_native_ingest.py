"""The server path: the embedded engine turns envelopes into Native rows in the process that writes to a
server (storage.ingest.native). A process that has no chdb store converts on a private embedded
session, and can still open a chdb store afterwards (the private session gives way)."""

import subprocess
import sys
import textwrap

from tests.fixtures.clickhouse import random_database


def test_server_writer_then_a_chdb_store_in_one_process(clickhouse_server, tmp_path):
    database = random_database()
    script = textwrap.dedent(f"""
        from storage import FlowWriter, open_store
        from tests.storage.flows import every_family
        flows = every_family()
        server = open_store({clickhouse_server.store_url(database)!r})
        server.migrate()
        with FlowWriter(server, spool_dir={str(tmp_path / "spool")!r}) as writer:
            writer.write(flows)
        assert server._native is not None, "the server path should convert in the embedded engine"
        embedded = open_store("chdb://{tmp_path / 'db'}")
        embedded.migrate()
        embedded.insert_flows(flows, [f.SerializeToString() for f in flows])
        stored = [f.uuid for f in server.query_flows(limit=None, first=True)]
        assert stored == [f.uuid for f in flows] == [f.uuid for f in embedded.query_flows(limit=None, first=True)]
        assert server.query_flows(limit=None, first=True) == flows
        print("ok", len(flows))
    """)
    try:
        result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
        assert result.returncode == 0 and result.stdout.startswith("ok"), result.stderr[-3000:]
    finally:
        clickhouse_server.client().execute(f"DROP DATABASE IF EXISTS {database}")


def test_a_url_without_the_http_port_falls_back_to_columns(clickhouse_server, tmp_path, caplog):
    """A server whose HTTP interface is not where the URL says still takes every flow (through
    clickhouse-driver columns), and the log says to set http_port."""
    from storage import FlowWriter, open_store
    from tests.storage.flows import every_family
    database = random_database()
    store = open_store(f"{clickhouse_server.url}/{database}?http_port=1")  # nothing listens on port 1
    try:
        store.migrate()
        flows = every_family()
        with FlowWriter(store, spool_dir=str(tmp_path / "spool"), retry_initial=0.05) as writer:
            writer.write(flows)
            writer.flush()
        assert store.query_flows(limit=None, first=True) == flows
        assert "no HTTP interface at port 1 (set http_port= in the storage URL)" in caplog.text
    finally:
        clickhouse_server.client().execute(f"DROP DATABASE IF EXISTS {database}")
