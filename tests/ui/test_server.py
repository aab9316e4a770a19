"""Serving the UI: authentication, the loopback rule, the CLI's errors, the data cache."""

from __future__ import annotations

import base64
import subprocess
import sys
import urllib.error
import urllib.request

import pytest

from ui.app import start
from ui.auth import Auth, UIConfigError
from ui.data import TTLCache

TOKEN = "s3cret-token-1"


def get(url: str, headers: dict | None = None) -> tuple[int, dict]:
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers or {}), timeout=10) as r:
            return r.status, dict(r.headers)
    except urllib.error.HTTPError as err:
        return err.code, dict(err.headers)


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
    status, headers = get(url + f"/?token={TOKEN}")
    assert status == 200 and "flowscope_token=" in headers["Set-Cookie"] and "HttpOnly" in headers["Set-Cookie"]
    assert get(url + "/_dash-layout", {"Cookie": f"flowscope_token={TOKEN}"})[0] == 200


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


@pytest.mark.parametrize("args, message", [
    (["--address", "0.0.0.0:8050"], "--address 0.0.0.0: not a loopback address"),
    (["--address", "nowhere"], "--address 'nowhere': expected host:port"),
    (["--basic-auth", "admin"], "--basic-auth 'admin':...: expected user:password"),
    (["--auth-token", "short"], "--auth-token: expected at least 8 characters"),
])
def test_cli_errors_are_one_line(args, message):
    r = subprocess.run([sys.executable, "-m", "flowscope.cli", "ui", *args], capture_output=True, text=True,
                       timeout=60)
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
    import socket
    import time
    url = f"chdb://{tmp_path}/db?database=flowscope"
    empty = subprocess.run([sys.executable, "-m", "flowscope.cli", "ui", "--storage", url], capture_output=True,
                           text=True, timeout=120)
    assert empty.returncode == 1 and "flowscope storage migrate" in empty.stderr, empty.stderr
    subprocess.run([sys.executable, "-m", "flowscope.cli", "storage", "--storage", url, "migrate"], check=True,
                   capture_output=True, timeout=120)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    ui = subprocess.Popen([sys.executable, "-m", "flowscope.cli", "ui", "--storage", url, "--address",
                           f"127.0.0.1:{port}", "--auth-token", TOKEN], stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        status = None
        while time.monotonic() < deadline and ui.poll() is None:
            try:
                status = get(f"http://127.0.0.1:{port}/_dash-layout", {"Authorization": f"Bearer {TOKEN}"})[0]
                break
            except OSError:
                time.sleep(0.2)
        assert status == 200, ui.stderr.read() if ui.poll() is not None else "no answer"
        assert get(f"http://127.0.0.1:{port}/_dash-layout")[0] == 401
    finally:
        ui.terminate()
        ui.wait(20)
