"""`flowscope ui` over a ClickHouse server that is down (issue #16): it starts and serves instead of
exiting (and crash-looping); its views say the store did not answer, and a banner over every page says so
while it lasts."""

import subprocess
import sys
import urllib.request

from selenium.webdriver.common.by import By

from lab.testbed.clickhouse import free_port, random_database
from lab.testbed.wait import wait_for
from storage import DeferredStore
from tests.fixtures.chromium import wait_until
from tests.fixtures.stopping import ROOT
from ui import ids
from ui.app import start


def test_ui_starts_while_clickhouse_is_down():
    dead, port = free_port(), free_port()
    proc = subprocess.Popen([sys.executable, "-m", "flowscope", "ui", "--storage",
                             f"clickhouse://default@127.0.0.1:{dead}/flowscope", "--address", f"127.0.0.1:{port}"],
                            cwd=ROOT, stderr=subprocess.PIPE, text=True)

    def front_page() -> tuple[int, bytes] | None:
        assert proc.poll() is None, proc.stderr.read()
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5) as reply:
                return reply.status, reply.read()
        except OSError:
            return None  # not listening yet

    try:
        page = wait_for(front_page, 90, "the UI's front page", interval=0.5)
        assert page[0] == 200
    finally:
        proc.terminate()
        _, err = proc.communicate(timeout=30)
    assert "storage unavailable, trying again" in err and f"127.0.0.1:{dead}" in err


def test_the_ui_shows_a_banner_while_the_store_is_down_and_drops_it_when_it_is_back(own_server, chromium):
    """Panels keep their last data when queries fail; the banner is what tells an operator the map is stale."""
    store = DeferredStore(own_server.store_url(random_database()), retry_s=0.2)
    ui = start(store, "127.0.0.1:0", refresh_s=1.0)

    def banner():
        return chromium.find_element(By.ID, ids.STORE_BANNER)

    try:
        chromium.get(ui.url + "/")
        wait_until(lambda: chromium.find_element(By.ID, ids.MAP_SUMMARY).text, timeout=30)  # a query answered
        assert not banner().is_displayed()
        own_server.stop()
        wait_until(lambda: banner().is_displayed(), timeout=60)
        assert "The flow store is not answering" in banner().text
        assert f"127.0.0.1:{own_server.tcp_port}/" in banner().text, banner().text
        own_server.start()
        wait_until(lambda: not banner().is_displayed(), timeout=90)
    finally:
        ui.stop()
