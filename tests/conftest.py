"""Shared test setup. Fixture modules live in tests/fixtures/ (one per dependency: lab, clickhouse,
chromium, ...) and are all loaded here, so a test directory uses them without importing."""

import pathlib

import pytest

pytest_plugins = sorted(
    f"tests.fixtures.{p.stem}"
    for p in (pathlib.Path(__file__).parent / "fixtures").glob("*.py")
    if p.stem != "__init__"
)

# Fixtures that start a real dependency — the kernel datapath or a lab (root), ClickHouse (chdb or a
# server), Prometheus, Chromium. A test that uses one, or is marked root, is an integration test (so is
# one marked integration itself: it starts its dependency without a fixture); the rest are unit tests:
# `make unit` runs them without root, in parallel, in under a minute; `make test` runs all.
INTEGRATION_FIXTURES = {
    "chdb_dir", "chromium", "own_server", "clickhouse_cluster", "clickhouse_server", "collector_factory", "enforced_collector",
    "lab_factory", "policy_cli", "prometheus_factory", "relay_store", "server_database", "store", "store_url",
}


def pytest_collection_modifyitems(config, items):
    for item in items:
        if item.get_closest_marker("root") or INTEGRATION_FIXTURES & set(item.fixturenames):
            item.add_marker(pytest.mark.integration)


@pytest.hookimpl(trylast=True)
def pytest_unconfigure(config):
    # chdb's global context can crash in its atexit shutdown ("ShutdownTablesThreadPool is not
    # initialized", then SIGSEGV) after every test has passed, turning a green run into make's error 2.
    # The results are reported by now; leave without running that shutdown, keeping pytest's exit status.
    import os
    import sys
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(getattr(config, "_flowscope_exitstatus", 0))


def pytest_sessionfinish(session, exitstatus):
    session.config._flowscope_exitstatus = int(exitstatus)
