"""Hubble's HUBBLE_* environment variables and config file drive flowscope's connection flags as they
drive hubble's (flag > HUBBLE_<FLAG> > ~/.config/hubble/config.yaml > default), for real commands
against a real collector."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.fixtures.cli import ROOT


def run(*args: str, env: dict, cwd: str = ROOT) -> subprocess.CompletedProcess:
    base = {k: v for k, v in os.environ.items() if not k.startswith("HUBBLE_") and k != "XDG_CONFIG_HOME"}
    return subprocess.run([sys.executable, "-m", "flowscope", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=30, env={**base, **env})


@pytest.fixture
def collector(node_factory):
    return node_factory("node-a")


def test_config_file_env_and_flag_in_hubbles_order(collector, tmp_path):
    home = tmp_path / "home"
    (home / ".config" / "hubble").mkdir(parents=True)
    (home / ".config" / "hubble" / "config.yaml").write_text(f"server: {collector.address}\ntimeout: 2s\n")
    env = {"HOME": str(home)}
    out = run("status", env=env)
    assert out.returncode == 0 and f"Healthcheck (via {collector.address}): Ok" in out.stdout, out.stderr
    out = run("observe", "--last", "1", env=env)
    assert out.returncode == 0, out.stderr
    wrong = {**env, "HUBBLE_SERVER": "localhost:1", "HUBBLE_TIMEOUT": "300ms"}
    out = run("list", "nodes", env=wrong)
    assert out.returncode == 1 and "cannot connect to localhost:1" in out.stderr, "env beats config"
    out = run("list", "nodes", "--server", collector.address, env=wrong)
    assert out.returncode == 0 and out.stdout.startswith("NAME     STATUS"), "the flag beats the env"
    xdg = tmp_path / "xdg"
    (xdg / "hubble").mkdir(parents=True)
    (xdg / "hubble" / "config.yaml").write_text("server: localhost:2\ntimeout: 0.2\n")
    out = run("status", env={**env, "XDG_CONFIG_HOME": str(xdg)})
    assert "cannot connect to localhost:2" in out.stderr, "$XDG_CONFIG_HOME/hubble wins, as in Go"


def test_hubble_config_env_names_the_file_and_tls_settings_are_read(collector, tmp_path):
    config = tmp_path / "other.yaml"
    config.write_text(f"server: {collector.address}\ntls: true\n")
    out = run("status", "--timeout", "1", env={"HOME": str(tmp_path), "HUBBLE_CONFIG": str(config)})
    assert out.returncode == 1 and f"{collector.address}: the server does not speak TLS" in out.stderr, \
        "tls: true from the config makes the client speak TLS to a plaintext server"
    out = run("status", env={"HOME": str(tmp_path), "HUBBLE_CONFIG": str(config), "HUBBLE_TLS": "false"})
    assert out.returncode == 0, out.stderr


@pytest.mark.parametrize("content, env, message", [
    ("server: [unclosed\n", {}, "config file {path}: while parsing a flow sequence"),
    ("- a\n- b\n", {}, "config file {path}: expected a mapping of Hubble settings"),
    ("timeout: soon\n", {}, "{path}: timeout 'soon': expected a duration such as 5s, 1m30s or 500ms"),
    ("tls: maybe\n", {}, "{path}: tls 'maybe': expected true or false"),
    ("server: localhost:1\n", {"HUBBLE_TLS": "sometimes"}, "HUBBLE_TLS 'sometimes': expected true or false"),
])
def test_bad_settings_give_one_line_errors(tmp_path, content, env, message):
    path = tmp_path / "config.yaml"
    path.write_text(content)
    out = run("status", "--config", str(path), env={"HOME": str(tmp_path), **env})
    assert out.returncode == 1 and out.stderr.count("\n") == 1, out.stderr
    assert message.format(path=path) in out.stderr, out.stderr


def test_a_given_config_file_must_exist(tmp_path):
    out = run("list", "nodes", "--config", str(tmp_path / "nope.yaml"), env={"HOME": str(tmp_path)})
    assert out.returncode == 1
    assert out.stderr.strip() == (f"flowscope list: error: config file {tmp_path}/nope.yaml: no such file "
                                  "(expected Hubble's config.yaml)")


def test_resolution_order_and_values(tmp_path):
    """flag > HUBBLE_<FLAG> > config file > default, with hubble's value forms (Go durations, lists)."""
    from flowscope.cli import build_parser
    from flowscope.hubble_config import resolve

    config = tmp_path / "config.yaml"
    config.write_text("server: from-config:4245\ntimeout: 1m30s\ntls-ca-cert-files: [a.pem, b.pem]\n"
                      "tls-server-name: config.example\n")
    env = {"HOME": str(tmp_path), "HUBBLE_CONFIG": str(config), "HUBBLE_TIMEOUT": "300ms",
           "HUBBLE_TLS_SERVER_NAME": "env.example"}
    args = resolve(build_parser("status").parse_args(["status"]), env)
    assert (args.server, args.timeout, args.tls_ca, args.tls_server_name, args.tls) == (
        "from-config:4245", 0.3, ["a.pem", "b.pem"], "env.example", False)
    args = resolve(build_parser("status").parse_args(
        ["status", "--server", "flag:1", "--tls-ca-cert-files", "c.pem", "--timeout", "2"]), env)
    assert (args.server, args.timeout, args.tls_ca) == ("flag:1", 2.0, ["c.pem"])
    args = resolve(build_parser("observe").parse_args(["observe"]), {"HOME": str(tmp_path / "none")})
    assert (args.server, args.timeout, args.tls_ca, args.tls) == ("localhost:4245", 5.0, [], False)
