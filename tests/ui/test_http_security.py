"""The JSON API and the UI as users meet them, on real processes and sockets: credentials or 401 with no
data, CORS only for the allowlisted origin, a slowloris client blocks nobody, HTTPS with certificates
that rotate on disk, secrets never on the command line, loopback unless authenticated."""

from __future__ import annotations

import pathlib
import shutil
import socket
import subprocess
import threading
import time

import pytest
import requests

from lab.testbed.clickhouse import free_port, terminate
from tests.fixtures.cli import flowscope, flowscope_process
from tests.fixtures.relay import make_pki
from tests.grafana.stores import shop_store
from lab.testbed.wait import wait_for
from ui.auth import Auth
from ui.json_api import create_http_api
from ui.serving import Limits, TLSFiles

TOKEN = "api-token-0123456789abcdef"
GRAFANA = "https://grafana.example.com"


def wait_serving(process: subprocess.Popen, url: str, **kw) -> None:
    def up() -> bool:
        assert process.poll() is None, process.stderr.read()
        try:
            requests.get(url, timeout=2, **kw)
            return True
        except requests.ConnectionError:
            return False
    wait_for(up, timeout=90, what=url)


@pytest.fixture(scope="module", params=["chdb"])
def shop(request, chdb_dir, tmp_path_factory):
    """An embedded store with the shop's flows, for servers run in this process."""
    for store, _ in shop_store(request, chdb_dir, tmp_path_factory.mktemp("spool")):
        yield store


@pytest.fixture(scope="module", params=["server"])
def relay(request, chdb_dir, tmp_path_factory):
    """`flowscope relay` serving the JSON API over a clickhouse-server store holding the shop's flows,
    its token in the environment (never on the command line)."""
    for store, _ in shop_store(request, chdb_dir, tmp_path_factory.mktemp("spool")):
        u = store.url
        port = free_port()
        process = flowscope_process(
            "relay", "--peer", f"node-a=127.0.0.1:{free_port()}", "--listen-address", "127.0.0.1:0",
            "--storage", f"clickhouse://{u.user}@{u.host}:{u.port}/{u.database}?http_port={u.http_port}",
            "--http-api-address", f"127.0.0.1:{port}", "--http-api-cors-origin", GRAFANA,
            env={"FLOWSCOPE_HTTP_API_TOKEN": TOKEN, "FLOWSCOPE_STORAGE_PASSWORD": u.password})
        url = f"http://127.0.0.1:{port}"
        try:
            wait_serving(process, url)
            yield url, process
        finally:
            terminate(process)


def test_without_credentials_401_and_no_data_with_them_data(relay):
    url, _ = relay
    flows = url + "/api/v1/flows?since=1h&limit=1000"
    for headers in ({}, {"Authorization": "Bearer wrong-token-0123456789"}, {"Authorization": TOKEN},
                    {"Authorization": "Basic YWRtaW46YWRtaW4="}, {"Cookie": f"flowscope_session={TOKEN}"}):
        refused = requests.get(flows, headers=headers, timeout=10)
        assert refused.status_code == 401, headers
        assert refused.json() == {"error": "authentication required"}
    assert requests.get(flows + f"&token={TOKEN}", timeout=10).status_code == 401  # never from the URL
    answered = requests.get(flows, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=10)
    assert answered.status_code == 200 and len(answered.json()) > 10
    assert {r["source_namespace"] for r in answered.json()} >= {"shop"}


def test_the_token_is_not_on_the_command_line(relay):
    _, process = relay
    assert TOKEN.encode() not in pathlib.Path(f"/proc/{process.pid}/cmdline").read_bytes()


def test_cors_only_for_the_allowed_origin_and_exactly_it(relay):
    url, _ = relay
    auth = {"Authorization": f"Bearer {TOKEN}"}
    for origin in ("https://evil.example.com", "null", GRAFANA + ".evil.com", "http://grafana.example.com"):
        answer = requests.get(url + "/api/v1/status", headers={**auth, "Origin": origin}, timeout=10)
        assert answer.status_code == 200 and "Access-Control-Allow-Origin" not in answer.headers, origin
        preflight = requests.options(url + "/api/v1/status", headers={
            "Origin": origin, "Access-Control-Request-Method": "GET",
            "Access-Control-Request-Headers": "authorization"}, timeout=10)
        assert not any(h.startswith("Access-Control-Allow") for h in preflight.headers), origin
    answer = requests.get(url + "/api/v1/status", headers={**auth, "Origin": GRAFANA}, timeout=10)
    assert answer.headers["Access-Control-Allow-Origin"] == GRAFANA and answer.headers["Vary"] == "Origin"
    preflight = requests.options(url + "/api/v1/status", headers={
        "Origin": GRAFANA, "Access-Control-Request-Method": "GET"}, timeout=10)
    assert preflight.status_code == 204 and preflight.headers["Access-Control-Allow-Origin"] == GRAFANA
    assert preflight.headers["Access-Control-Allow-Headers"] == "Authorization"
    refused = requests.get(url + "/api/v1/status", headers={"Origin": GRAFANA}, timeout=10)
    assert refused.status_code == 401 and refused.headers["Access-Control-Allow-Origin"] == GRAFANA


class Slowloris:
    """`n` connections that send a request's headers one byte at a time and never finish them."""

    def __init__(self, port: int, n: int) -> None:
        self.sockets = [socket.create_connection(("127.0.0.1", port), timeout=5) for _ in range(n)]
        self.stop = threading.Event()
        self.closed_by_server = 0
        self.thread = threading.Thread(target=self._trickle, daemon=True)
        self.thread.start()

    def _trickle(self) -> None:
        request = b"GET /api/v1/status HTTP/1.1\r\nHost: x\r\n" + b"X-Slow: " + b"a" * 100_000
        for byte in request:
            if self.stop.wait(0.05):
                return
            for sock in list(self.sockets):
                try:
                    sock.send(bytes([byte]))
                except OSError:
                    self.sockets.remove(sock)
                    self.closed_by_server += 1

    def close(self) -> None:
        self.stop.set()
        self.thread.join(5)
        for sock in self.sockets:
            sock.close()


def test_a_slowloris_client_does_not_block_other_requests(relay):
    """More trickling connections than the server has threads (8); every normal request still answers."""
    url, _ = relay
    slow = Slowloris(int(url.rsplit(":", 1)[1]), 40)
    try:
        time.sleep(1)  # let the slow requests start trickling
        for _ in range(20):
            answer = requests.get(url + "/api/v1/status", headers={"Authorization": f"Bearer {TOKEN}"}, timeout=10)
            assert answer.status_code == 200
        assert len(slow.sockets) == 40, "the slow connections are still open (trickling, not refused)"
    finally:
        slow.close()


def test_a_request_that_trickles_past_the_timeout_is_closed(shop):
    server = create_http_api(shop, limits=Limits(request_timeout_s=1))
    slow = Slowloris(server.port, 3)
    try:
        wait_for(lambda: slow.closed_by_server == 3, timeout=30, what="the server closing slow requests")
        assert requests.get(server.url + "/api/v1/status", timeout=10).status_code == 200
    finally:
        slow.close()
        server.stop()


def test_off_loopback_needs_credentials(shop):
    with pytest.raises(Exception, match="--http-api-address 0.0.0.0: not a loopback address; expected "
                                        "--http-api-auth-token-file"):
        create_http_api(shop, "0.0.0.0:0")
    server = create_http_api(shop, "0.0.0.0:0", auth=Auth.parse(TOKEN))
    try:
        assert requests.get(f"http://127.0.0.1:{server.port}/api/v1", timeout=10).status_code == 401
    finally:
        server.stop()


@pytest.mark.parametrize("args, env, message", [
    (["--http-api-address", "0.0.0.0:0"], {}, "--http-api-address 0.0.0.0: not a loopback address"),
    (["--http-api-address", "127.0.0.1:0"], {"FLOWSCOPE_HTTP_API_TOKEN": "short"},
     "--http-api-auth-token-file (or $FLOWSCOPE_HTTP_API_TOKEN): expected a token of at least 16 characters"),
    (["--http-api-address", "127.0.0.1:0", "--http-api-auth-token-file", "/nonexistent"], {},
     "--http-api-auth-token-file /nonexistent: cannot read the secret: No such file or directory"),
    (["--http-api-address", "127.0.0.1:0", "--http-api-cors-origin", "*"], {},
     "--http-api-cors-origin '*': expected an origin such as https://grafana.example.com"),
    (["--http-api-address", "127.0.0.1:0", "--http-api-tls-cert-file", "/nonexistent"], {},
     "--http-api-tls-cert-file and --http-api-tls-key-file: expected both or neither"),
    (["--storage", "clickhouse://flowscope@db.example.com:9000/flowscope"], {},
     "--storage clickhouse://...@db.example.com: a server off loopback needs a password; expected "
     "--storage-password-file or $FLOWSCOPE_STORAGE_PASSWORD"),
])
def test_relay_refuses_bad_http_api_settings_in_one_line(tmp_path, args, env, message):
    # as processes: in this module's process the in-process runs were followed by EBADF on waitress's
    # trigger pipe in the chdb tests (under investigation: a double close somewhere)
    done = flowscope("relay", "--peer", "a=127.0.0.1:1", "--listen-address", "127.0.0.1:0", "--storage",
                     f"chdb://{tmp_path}/db", *args, env=env, timeout=120)
    assert done.returncode == 1 and message in done.stderr and done.stderr.strip().count("\n") == 0, done.stderr


def test_https_with_certificates_swapped_on_disk(shop, tmp_path):
    first, second = tmp_path / "first", tmp_path / "second"
    first.mkdir()
    second.mkdir()
    old, new = make_pki(first), make_pki(second)
    live = tmp_path / "live"
    live.mkdir()
    for name in ("tls.crt", "tls.key"):
        shutil.copy(getattr(old.server, "cert" if name == "tls.crt" else "key"), live / name)
    server = create_http_api(shop, auth=Auth.parse(TOKEN), tls=TLSFiles(str(live / "tls.crt"), str(live / "tls.key")))
    url = f"https://localhost:{server.port}/api/v1/status"
    auth = {"Authorization": f"Bearer {TOKEN}"}
    try:
        assert server.url.startswith("https://")
        assert requests.get(url, headers=auth, verify=old.ca, timeout=10).json()["flows"] > 0
        with pytest.raises(requests.exceptions.SSLError):
            requests.get(url, headers=auth, verify=new.ca, timeout=10)
        with pytest.raises(requests.ConnectionError):  # plain HTTP on the TLS port: closed, no answer
            requests.get(url.replace("https", "http"), headers=auth, timeout=10)
        shutil.copy(new.server.cert, live / "tls.crt")
        shutil.copy(new.server.key, live / "tls.key")
        assert requests.get(url, headers=auth, verify=new.ca, timeout=10).status_code == 200
        big = requests.get(url.replace("status", "flows?limit=10000&since=1h"), headers=auth, verify=new.ca,
                           timeout=30)
        assert big.status_code == 200 and len(big.json()) > 10  # many TLS records, one response
    finally:
        server.stop()


def test_clients_stalled_mid_handshake_do_not_block_https(shop, tmp_path):
    pki = make_pki(tmp_path)
    server = create_http_api(shop, auth=Auth.parse(TOKEN), tls=TLSFiles(pki.server.cert, pki.server.key))
    stalled = [socket.create_connection(("127.0.0.1", server.port), timeout=5) for _ in range(40)]
    try:
        for sock in stalled[:20]:
            sock.send(b"\x16\x03\x01\x02\x00\x01")  # the start of a ClientHello, never finished
        for _ in range(10):
            answer = requests.get(f"https://localhost:{server.port}/api/v1/status", verify=pki.ca, timeout=10,
                                  headers={"Authorization": f"Bearer {TOKEN}"})
            assert answer.status_code == 200
    finally:
        for sock in stalled:
            sock.close()
        server.stop()


@pytest.mark.integration  # the embedded ClickHouse, started by the command itself
def test_flowscope_ui_over_https_with_the_token_from_a_file(tmp_path):
    """The real command: HTTPS, the token read from a file, exchanged for a Secure session cookie."""
    pki = make_pki(tmp_path)
    store = f"chdb://{tmp_path}/db?database=flowscope"
    migrated = flowscope("storage", "--storage", store, "migrate", timeout=120)
    assert migrated.returncode == 0, migrated.stderr
    (tmp_path / "ui.token").write_text(TOKEN + "\n")
    port = free_port()
    ui = flowscope_process("ui", "--storage", store, "--address", f"127.0.0.1:{port}", "--auth-token-file",
                           str(tmp_path / "ui.token"), "--tls-cert-file", pki.server.cert, "--tls-key-file", pki.server.key)
    url = f"https://localhost:{port}"
    try:
        wait_serving(ui, url + "/healthz", verify=pki.ca)
        assert requests.get(url + "/", verify=pki.ca, timeout=10).status_code == 401
        exchange = requests.get(url + f"/?token={TOKEN}", verify=pki.ca, allow_redirects=False, timeout=10)
        assert exchange.status_code == 303 and exchange.headers["Location"] == "/"
        cookie = exchange.headers["Set-Cookie"]
        assert "; Secure" in cookie and "; HttpOnly" in cookie and "SameSite=Strict" in cookie and TOKEN not in cookie
        page = requests.get(url + "/", cookies=exchange.cookies, verify=pki.ca, timeout=10)
        assert page.status_code == 200 and "flowscope" in page.text
        assert TOKEN.encode() not in pathlib.Path(f"/proc/{ui.pid}/cmdline").read_bytes()
    finally:
        terminate(ui)
