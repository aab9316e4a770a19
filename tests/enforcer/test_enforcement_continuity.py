"""Enforcement never fails open across collector stops: with a deny applied and probes connecting every
10 ms, the collector is stopped with SIGTERM, killed with SIGKILL, and replaced by a new process while
the old one still runs (a rollout with overlap). Not one denied connection gets through, and allowed
traffic — new connections and an established one — never stops. Afterwards the programs leave only on
an explicit `flowscope policy remove --all` or `flowscope collector --uninstall`."""

import copy
import json
import os
import pathlib
import signal
import subprocess
import sys
import time

import pytest

from collector.datapath.attach import TcAttacher
from enforcer.datapath import forget
from tests.collector.datapath.helpers import wait_listening
from tests.enforcer.test_lab_enforce import DATABASE_POLICY, HOLD, TOPOLOGY, connects, wait_attached
from tests.fixtures.datapath import unique_pin_dir

PROBE = str(pathlib.Path(__file__).with_name("connect_probe.py"))
# The database accepts and closes, with a deep accept queue: an allowed connection that times out is the
# datapath's fault, not a CPU-starved server's full backlog (the bcc compiles of new collectors take a core).
SINK = ("import socket\n"
        "s=socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); s.bind(('0.0.0.0',6379))\n"
        "s.listen(4096)\n"
        "while True: s.accept()[0].close()\n")
SINK_TOPOLOGY = copy.deepcopy(TOPOLOGY)
next(p for p in SINK_TOPOLOGY["pods"] if p["name"] == "database")["command"] = f"exec $FLOWSCOPE_PYTHON -c \"{SINK}\""


def start_collector(lab, pin_dir: str) -> subprocess.Popen:
    """`flowscope collector` as a user runs it; returns once its programs are attached."""
    proc = subprocess.Popen([sys.executable, "-m", "flowscope", "collector", "--pin-dir", pin_dir,
                             "--listen-address", "", "--unix-socket", "", "--lab-state", lab.state_path],
                            stderr=subprocess.PIPE, text=True)
    wait_attached(proc, 90)
    return proc


def stop(proc: subprocess.Popen, sig: int) -> str:
    """Signal the collector, wait for its exit, return the rest of its log."""
    proc.send_signal(sig)
    rest = proc.stderr.read()
    assert proc.wait(timeout=30) == (0 if sig == signal.SIGTERM else -sig), rest
    return rest


def filters(lab, pod: str) -> list[str]:
    attacher = TcAttacher({})
    try:
        return attacher.attached_program_names(lab.pod(pod).ifindex)
    finally:
        attacher.close()


def probe(lab, pod: str, ip: str, port: int) -> subprocess.Popen:
    return lab.popen(pod, [sys.executable, PROBE, ip, str(port), "0.01", "1.0"], stdin=subprocess.PIPE,
                     stdout=subprocess.PIPE, text=True)


def probe_counts(proc: subprocess.Popen) -> dict[str, int]:
    out, _ = proc.communicate("stop\n", timeout=30)
    return json.loads(out)


@pytest.fixture
def pin_dir():
    path = unique_pin_dir()
    yield path
    subprocess.run([sys.executable, "-m", "flowscope", "collector", "--uninstall", "--pin-dir", path],
                   capture_output=True, timeout=60)
    forget(path)


@pytest.mark.root
def test_deny_holds_through_sigterm_sigkill_and_rollout(lab_factory, policy_cli, pin_dir, tmp_path):
    lab = lab_factory(SINK_TOPOLOGY)
    database, backend = lab.pod("database"), lab.pod("backend")
    wait_listening(lab, "database", 6379)
    wait_listening(lab, "backend", 7000)
    (tmp_path / "database.yaml").write_text(DATABASE_POLICY)
    running = [start_collector(lab, pin_dir)]
    probes = []
    try:
        policy_cli("apply", str(tmp_path / "database.yaml"), pin_dir=pin_dir, lab=lab)
        assert not connects(lab, "frontend", database.ipv4, 6379)
        denied = probe(lab, "frontend", database.ipv4, 6379)
        allowed = probe(lab, "backend", database.ipv4, 6379)
        held = lab.popen("frontend", [sys.executable, "-c", HOLD, backend.ipv4], stdin=subprocess.PIPE,
                         stdout=subprocess.PIPE, text=True)
        probes = [denied, allowed, held]
        assert held.stdout.readline().strip() == "connected"
        time.sleep(0.5)

        log = stop(running.pop(), signal.SIGTERM)
        assert "keeping 3 pod devices attached" in log, log
        assert filters(lab, "database") == ["flowscope_from_pod", "flowscope_to_pod"], "SIGTERM kept them"
        time.sleep(1.0)                                   # no collector at all

        running.append(start_collector(lab, pin_dir))     # adopts the pinned maps, replaces the filters
        time.sleep(0.5)
        stop(running.pop(), signal.SIGKILL)
        time.sleep(1.0)

        running.append(start_collector(lab, pin_dir))
        time.sleep(0.5)
        running.append(start_collector(lab, pin_dir))     # the rollout: the new one attaches, then...
        time.sleep(0.5)
        stop(running.pop(0), signal.SIGTERM)              # ...the old one goes
        time.sleep(0.5)

        held.stdin.write("stop\n")
        held.stdin.flush()
        echoes = int(held.stdout.readline())
        assert held.wait(timeout=10) == 0, "the established connection broke"
        denied_counts, allowed_counts = probe_counts(denied), probe_counts(allowed)
    finally:
        for proc in probes:
            proc.kill()
        for proc in running:
            proc.kill()
            proc.wait()
    assert denied_counts["ok"] == 0, f"denied connections got through: {denied_counts}"
    assert denied_counts["timeout"] > 100, f"the denied probe ran throughout: {denied_counts}"
    assert allowed_counts["refused"] == allowed_counts["timeout"] == 0, f"allowed traffic stopped: {allowed_counts}"
    assert allowed_counts["ok"] > 100, allowed_counts
    assert echoes > 10, "echoes went on over the held connection"

    # No collector runs, the deny still holds; only an explicit command takes the programs out.
    assert not connects(lab, "frontend", database.ipv4, 6379)
    out = policy_cli("remove", "--all", pin_dir=pin_dir, lab=lab).stdout
    assert "removed 1 policies" in out and "detached the programs a stopped collector left" in out, out
    assert filters(lab, "database") == []
    assert connects(lab, "frontend", database.ipv4, 6379)

    # The uninstall command: refused while a collector runs; afterwards nothing of flowscope is left.
    collector = start_collector(lab, pin_dir)
    try:
        policy_cli("apply", str(tmp_path / "database.yaml"), pin_dir=pin_dir, lab=lab)
        refused = subprocess.run([sys.executable, "-m", "flowscope", "collector", "--uninstall", "--pin-dir",
                                  pin_dir], capture_output=True, text=True, timeout=60)
        assert refused.returncode != 0 and "a collector is running on pin dir" in refused.stderr
    finally:
        stop(collector, signal.SIGKILL)
    assert not connects(lab, "frontend", database.ipv4, 6379)
    done = subprocess.run([sys.executable, "-m", "flowscope", "collector", "--uninstall", "--pin-dir", pin_dir],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "uninstalled" in done.stdout and "conntrack" in done.stdout, done.stdout
    assert filters(lab, "database") == [] and not os.path.exists(pin_dir)
    assert "no policies applied" in policy_cli("list", pin_dir=pin_dir, lab=lab).stdout
    assert connects(lab, "frontend", database.ipv4, 6379)
