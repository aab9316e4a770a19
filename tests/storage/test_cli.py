"""`flowscope storage migrate|status` against a server: idempotent, machine-readable, clear errors."""

import json
import subprocess

from tests.fixtures.cli import flowscope as run_flowscope, flowscope_in_process
from tests.fixtures.clickhouse import free_port


def flowscope(*args: str) -> subprocess.CompletedProcess:
    return run_flowscope("storage", *args)


def test_migrate_then_status(clickhouse_server, server_database):
    url = clickhouse_server.store_url(server_database)
    first = flowscope("migrate", "--storage", url, "-o", "json")
    assert first.returncode == 0, first.stderr
    assert json.loads(first.stdout) == {"applied": [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11], "schema_version": 11}
    again = flowscope("migrate", "--storage", url, "-o", "json")
    assert json.loads(again.stdout) == {"applied": [], "schema_version": 11}
    status = json.loads(flowscope("status", "--storage", url, "-o", "json").stdout)
    assert status["server_version"] == "18.16.1" and status["flows"] == 0
    assert "s3cret" not in status["url"]


def test_errors_are_one_line():
    bad = flowscope_in_process("storage", "status", "--storage", "postgres://x/y")
    assert bad.returncode == 1
    assert bad.stderr.strip().splitlines()[-1].startswith("flowscope storage: error: storage URL")
    down = flowscope_in_process("storage", "status", "--storage",
                                f"clickhouse://127.0.0.1:{free_port()}/x?connect_timeout=1")
    assert down.returncode == 1 and "server unreachable" in down.stderr.strip().splitlines()[-1]
