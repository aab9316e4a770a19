"""A store on each backend holding a few minutes of the shop's traffic, for the tests that read
storage through Grafana's SQL and through the relay's HTTP API (module-scoped: loading is the slow part)."""

from __future__ import annotations

import time

from lab.testbed import sample_flows as sf
from tests.fixtures.clickhouse import random_database

NS = 1_000_000_000
ROUNDS = 3


def shop_store(request, chdb_dir, spool_dir):
    """Yields (store, now_ns): ROUNDS rounds of sf.shop_round(), one a minute, the last a minute ago.
    `request.param` is the backend ("chdb" or "server"); the database is dropped afterwards."""
    from storage import FlowWriter, open_store

    name = random_database()
    if request.param == "chdb":
        url = f"chdb://{chdb_dir}?database={name}"
    else:
        url = request.getfixturevalue('clickhouse_server').store_url(name)
    store = open_store(url)
    store.migrate()
    now = time.time_ns()
    writer = FlowWriter(store, spool_dir=str(spool_dir))
    writer.write([f for i in range(ROUNDS) for f in sf.shop_round(ts_ns=now - (ROUNDS - i) * 60 * NS + 1)])
    writer.close()
    try:
        yield store, now
    finally:
        store.drop_database()
        store.close()
