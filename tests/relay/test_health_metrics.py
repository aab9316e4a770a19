"""The relay's health metrics report storage write latency and rows written, from the writer's own
inserts, scraped over HTTP as Prometheus would."""

import time
import urllib.request

from relay import Relay
from flowscope.commands.relay import start_metrics
from tests.relay.nodes import make_flow


def scrape(port: int) -> dict[str, float]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as answer:
        lines = answer.read().decode().splitlines()
    return {name: float(value) for name, value in (line.rsplit(" ", 1) for line in lines
                                                    if line and not line.startswith("#"))}


def test_storage_write_latency_and_rows_are_exported(relay_store):
    writer = relay_store.writer()
    relay = Relay(relay_store.store, writer)
    server = start_metrics(relay, writer, "127.0.0.1:0")
    try:
        t0 = time.time_ns()
        writer.write([make_flow(t0 + i, "web-1", "db-0") for i in range(300)])
        writer.flush()
        metrics = scrape(server.server_port)
        assert metrics["flowscope_storage_write_seconds_count"] >= 1
        assert metrics["flowscope_storage_write_seconds_sum"] > 0
        assert metrics["flowscope_storage_rows_written_total"] == 300
    finally:
        server.shutdown()
        writer.close()
