"""Serving the UI: authentication, the loopback rule, the CLI's errors, the data cache."""

from __future__ import annotations

import base64
import urllib.error
import urllib.request

import pytest
import requests

from lab.testbed.clickhouse import free_port
from lab.testbed.wait import wait_for
from tests.fixtures.cli import flowscope, flowscope_in_process, flowscope_process
from tests.fixtures.relay import make_pki
from ui.app import start
from ui.auth import COOKIE, Auth, UIConfigError
from ui.serving import TLSFiles
from ui.data import TTLCache

TOKEN = "s3cret-token-0123456789"


def get(url: str, headers: dict | None = None) -> tuple[int, object]:
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers or {}), timeout=10) as r:
            return r.status, r.headers
    except urllib.error.HTTPError as err:
        return err.code, err.headers


@pytest.fixture
def served():
    servers = []

    def serve(**kw):
        servers.append(start(None, kw.pop("address", "127.0.0.1:0"), with_policy=False, **kw))
        return servers[-1]
    yield serve
    for s in servers:
        s.stop()


def test_open_on_loopback(served):
    assert get(served().url + "/")[0] == 200


def test_token_auth(served):
    url = served(auth=Auth.parse(token=TOKEN)).url
    assert get(url + "/")[0] == 401
    assert get(url + "/_dash-layout", {"Authorization": "Bearer wrong-token"})[0] == 401
    assert get(url + "/_dash-layout", {"Authorization": f"Bearer {TOKEN}"})[0] == 200
    assert get(url + "/?token=wrong-token-0123456789")[0] == 401
    assert get(url + "/healthz")[0] == 200  # the probes' path: no credentials, no data


def test_the_token_is_exchanged_once_for_a_session_cookie_and_leaves_the_url(served):
    url = served(auth=Auth.parse(token=TOKEN)).url
    exchange = requests.get(url + f"/flows?token={TOKEN}&live=1", allow_redirects=False, timeout=10)
    assert exchange.status_code == 303 and exchange.headers["Location"] == "/flows?live=1"
    cookie = exchange.headers["Set-Cookie"]
    session = exchange.cookies[COOKIE]
    assert TOKEN not in cookie and len(session) >= 40
    flags = {part.strip().split("=")[0].lower() for part in cookie.split(";")}
    assert {"httponly", "path", "max-age"} <= flags and "secure" not in flags  # plain HTTP: not Secure
    assert "SameSite=Strict" in cookie
    assert get(url + "/_dash-layout", {"Cookie": f"{COOKIE}={session}"})[0] == 200
    assert get(url + "/_dash-layout", {"Cookie": f"{COOKIE}={TOKEN}"})[0] == 401  # the token is no session
    assert get(url + "/_dash-layout", {"Cookie": f"{COOKIE}=made-up-session-id"})[0] == 401


def test_over_tls_the_session_cookie_is_secure(served, tmp_path):
    pki = make_pki(tmp_path)
    ui = served(auth=Auth.parse(token=TOKEN), tls=TLSFiles(pki.server.cert, pki.server.key))
    url = f"https://localhost:{ui.port}"
    exchange = requests.get(url + f"/?token={TOKEN}", allow_redirects=False, verify=pki.ca, timeout=10)
    assert exchange.status_code == 303 and "; Secure" in exchange.headers["Set-Cookie"]
    page = requests.get(url + "/", cookies={COOKIE: exchange.cookies[COOKIE]}, verify=pki.ca, timeout=10)
    assert page.status_code == 200 and "flowscope" in page.text


def test_basic_auth(served):
    url = served(auth=Auth.parse(basic="admin:pa:ss")).url
    status, headers = get(url + "/")
    assert status == 401 and headers["WWW-Authenticate"] == 'Basic realm="flowscope"'
    good = base64.b64encode(b"admin:pa:ss").decode()
    bad = base64.b64encode(b"admin:nope").decode()
    assert get(url + "/", {"Authorization": f"Basic {good}"})[0] == 200
    assert get(url + "/", {"Authorization": f"Basic {bad}"})[0] == 401


def test_non_loopback_needs_auth_or_insecure(served):
    with pytest.raises(UIConfigError, match="not a loopback address"):
        served(address="0.0.0.0:0")
    assert get(f"http://127.0.0.1:{served(address='0.0.0.0:0', insecure=True).port}/")[0] == 200
    served(address="0.0.0.0:0", auth=Auth.parse(token=TOKEN))


@pytest.mark.parametrize("args, env, message", [
    (["--address", "0.0.0.0:8050"], {}, "--address 0.0.0.0: not a loopback address"),
    (["--address", "nowhere"], {}, "--address 'nowhere': expected host:port"),
    ([], {"FLOWSCOPE_UI_BASIC_AUTH": "admin"}, "--basic-auth-file (or $FLOWSCOPE_UI_BASIC_AUTH): expected user:password"),
    ([], {"FLOWSCOPE_UI_TOKEN": "short"}, "--auth-token-file (or $FLOWSCOPE_UI_TOKEN): expected a token of at least 16"),
    (["--auth-token-file", "/dev/null"], {}, "--auth-token-file /dev/null: the file is empty; expected the secret"),
    (["--tls-key-file", "k.pem"], {}, "--tls-cert-file and --tls-key-file: expected both or neither"),
])
def test_cli_errors_are_one_line(args, env, message):
    r = flowscope_in_process("ui", *args, env=env)
    assert r.returncode == 1 and r.stderr.strip().count("\n") == 0 and message in r.stderr, r.stderr


def test_ttl_cache_answers_repeats_until_expiry():
    now = [0.0]
    cache = TTLCache(3.0, clock=lambda: now[0])
    calls = []
    compute = lambda: calls.append(1) or len(calls)  # noqa: E731
    assert cache.get("k", compute) == 1 and cache.get("k", compute) == 1
    now[0] = 3.5
    assert cache.get("k", compute) == 2 and len(calls) == 2


@pytest.mark.integration  # a chdb store in a subprocess
def test_cli_serves_a_migrated_store_and_refuses_an_empty_one(tmp_path):
    """The token comes from a file (a mounted Secret), never from the command line."""
    url = f"chdb://{tmp_path}/db?database=flowscope"
    empty = flowscope("ui", "--storage", url, timeout=120)
    assert empty.returncode == 1 and "flowscope storage migrate" in empty.stderr, empty.stderr
    migrated = flowscope("storage", "--storage", url, "migrate", timeout=120)
    assert migrated.returncode == 0, migrated.stderr
    port = free_port()
    (tmp_path / "token").write_text(TOKEN + "\n")
    ui = flowscope_process("ui", "--storage", url, "--address", f"127.0.0.1:{port}",
                           "--auth-token-file", str(tmp_path / "token"))

    def layout_status() -> int | None:
        assert ui.poll() is None, ui.stderr.read()
        try:
            return get(f"http://127.0.0.1:{port}/_dash-layout", {"Authorization": f"Bearer {TOKEN}"})[0]
        except OSError:
            return None
    try:
        assert wait_for(layout_status, timeout=60, what="the UI's layout") == 200
        assert get(f"http://127.0.0.1:{port}/_dash-layout")[0] == 401
    finally:
        ui.terminate()
        ui.wait(20)
