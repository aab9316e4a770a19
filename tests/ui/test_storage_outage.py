"""`flowscope ui` over a ClickHouse server that is down (issue #16): it starts and serves instead of
exiting (and crash-looping); its views say the store did not answer."""

import subprocess
import sys
import time
import urllib.request

from lab.testbed.clickhouse import free_port
from tests.fixtures.stopping import ROOT


def test_ui_starts_while_clickhouse_is_down():
    dead, port = free_port(), free_port()
    proc = subprocess.Popen([sys.executable, "-m", "flowscope", "ui", "--storage",
                             f"clickhouse://default@127.0.0.1:{dead}/flowscope", "--address", f"127.0.0.1:{port}"],
                            cwd=ROOT, stderr=subprocess.PIPE, text=True)
    try:
        deadline, page = time.monotonic() + 90, None
        while page is None and time.monotonic() < deadline:
            assert proc.poll() is None, proc.stderr.read()
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5) as reply:
                    page = (reply.status, reply.read())
            except OSError:
                time.sleep(0.5)
        assert page is not None and page[0] == 200
    finally:
        proc.terminate()
        _, err = proc.communicate(timeout=30)
    assert "storage unavailable, trying again" in err and f"127.0.0.1:{dead}" in err
