"""Every command of the README's demo block, run as written on the demo lab (deploy/lab/demo.yaml)
under `flowscope up`, returns what its comment and the README's text promise. The commands are read
from README.md itself; only what differs per machine is added: the ports `flowscope up` picked here
(for localhost:4245), the policy directory, and the pin dir and lab of this run for `policy apply`."""

from __future__ import annotations

import json
import pathlib
import re
import shlex
import signal
import subprocess
import sys

import pytest

from lab.testbed.wait import wait_for
from tests.fixtures.datapath import unique_pin_dir
from tests.fixtures.cli import ROOT
from tests.relay.test_lab import start_up, stop_up

README = pathlib.Path(ROOT) / "README.md"
DEMO = pathlib.Path(ROOT) / "deploy" / "lab" / "demo.yaml"


def demo_commands() -> list[list[str]]:
    """The `.venv/bin/flowscope ...` lines of the README's first sh block after `make demo`."""
    text = README.read_text()
    block = text[text.index("Then, in another terminal:"):]
    block = block[block.index("```sh") + 5:block.index("```", block.index("```sh") + 5)]
    return [shlex.split(line.split("  #")[0])[1:] for line in block.strip().splitlines()]


def run(args: list[str], timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "flowscope", *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=timeout)


@pytest.mark.root
def test_readme_demo_commands_on_the_demo_lab(lab_factory, tmp_path):
    commands = demo_commands()
    assert [c[0] for c in commands] == ["status", "list", "observe", "observe", "policy", "policy", "policy"]
    lab = lab_factory(DEMO.read_text())
    pin_dir = unique_pin_dir()
    up, log = start_up(lab, tmp_path, pin_dir)
    policies = tmp_path / "policies"
    try:
        started = re.search(r"relay Observer API on port (\d+)", log[-1])
        assert started, "".join(log)
        relay = f"localhost:{started.group(1)}"

        def here(args: list[str]) -> list[str]:
            args = [relay if a == "localhost:4245" else str(policies) if a == "/tmp/policies" else a for a in args]
            return args if "--server" in args or args[0] == "policy" else args + ["--server", relay]

        status, nodes, follow, errors, suggest, check, apply = [here(c) for c in commands]
        apply += ["--pin-dir", pin_dir, "--lab-state", lab.state_path, "--identity-state",
                  str(tmp_path / "identities.json")]

        # status: like `hubble status` — healthy, the relay's one collector connected
        out = run(status)
        assert out.returncode == 0, out.stderr
        assert out.stdout.startswith(f"Healthcheck (via {relay}): Ok\nCurrent/Max Flows: ")
        assert "Connected Nodes: 1/1" in out.stdout
        # list nodes: the collector the relay follows, connected
        out = run(nodes)
        assert out.returncode == 0 and re.search(r"^\S+ +Connected +(\d+s|N/A) ", out.stdout.splitlines()[1]), out.stdout
        # observe -f: live flows, one line each, as they happen
        live = subprocess.Popen([sys.executable, "-m", "flowscope", *follow], cwd=ROOT, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)
        try:
            lines = [live.stdout.readline() for _ in range(5)]
        finally:
            live.send_signal(signal.SIGINT)
            live.wait(timeout=30)
        assert all(re.match(r"\w{3} [ \d]\d \d\d:\d\d:\d\d\.\d{3}: ", line) for line in lines), lines
        # the 5xx answers of shop/backend (its /api/error), as Hubble JSON lines
        def server_errors():
            done = run(errors)
            assert done.returncode == 0, done.stderr
            return [json.loads(line) for line in done.stdout.splitlines()]
        found = wait_for(server_errors, 60, "backend's 500 answers", interval=1)  # each check runs a CLI
        for line in found:
            flow = line["flow"]
            assert flow["source"]["pod_name"].startswith("backend-") and flow["source"]["namespace"] == "shop"
            assert flow["l7"]["http"]["code"] >= 500 and flow["l7"]["type"] == "RESPONSE"
            assert not {"counters", "l7_partial", "kernel_drop_reason"} & set(flow), "Hubble's lines"
        # policy suggest: least-privilege policies per workload, one file each
        wait_for(lambda: run(["observe", "--server", relay, "--since", "10m", "--to-pod", "data/database",
                              "-o", "json"]).stdout, 60, "redis flows", interval=1)
        out = run(suggest)
        assert out.returncode == 0, out.stderr
        files = sorted(p.name for p in policies.iterdir())
        assert {"shop-frontend.yaml", "shop-backend.yaml", "data-database.yaml"} <= set(files), files
        # policy check: replays the window against the policies and says what they would deny
        out = run(check)
        assert out.returncode == 0, out.stderr
        replayed = re.match(r"(\d+) connections replayed: (\d+) would be denied, ", out.stdout)
        assert replayed and int(replayed.group(1)) > 0, out.stdout
        assert re.search(r"replaying flows: \d+ flows in the window", out.stderr), out.stderr
        # policy apply --audit: loaded in audit mode, and said so
        out = run(apply)
        assert out.returncode == 0, out.stderr
        assert re.search(r"applied \d+ policies \(.*\): \d+ endpoints audited \(none enforced\)", out.stdout), out.stdout
    finally:
        stop_up(up, log, pin_dir)
