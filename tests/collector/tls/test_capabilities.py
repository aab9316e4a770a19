"""The TLS capture with exactly the capabilities the Kubernetes DaemonSet grants (deploy/k8s, read from the
rendered manifest): `flowscope collector` under setpriv sees HTTPS served by an nginx worker that runs as
another user (nobody), as pod processes do; without CAP_SYS_PTRACE it says why it cannot."""

from __future__ import annotations

import collections
import json
import os
import shutil
import subprocess
import sys

import pytest

from lab.testbed.clickhouse import free_port, terminate
from lab.testbed.wait import wait_for
from tests.collector.datapath.helpers import wait_listening
from tests.collector.tls.test_tls_lab import curl, topology
from tests.deploy.test_k8s_manifests import render
from tests.fixtures.datapath import unique_pin_dir

pytestmark = pytest.mark.root

PATHS = ["/ok", "/created", "/teapot", "/ok"]
CAP_NAMES = {"BPF": 39, "PERFMON": 38, "NET_ADMIN": 12, "SYS_RESOURCE": 24, "IPC_LOCK": 14, "SYS_PTRACE": 19}


def daemonset_capabilities() -> list[str]:
    collector = next(o for o in render("embedded") if o["kind"] == "DaemonSet")
    spec = collector["spec"]["template"]["spec"]
    assert spec["hostPID"] is True
    return spec["containers"][0]["securityContext"]["capabilities"]["add"]


NOBODY = 65534


def nginx_uids(netns: str) -> set[int]:
    """The users of the nginx processes in a pod's network namespace."""
    pod_ns = os.stat(f"/run/netns/{netns}").st_ino
    uids = set()
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/comm") as f:
                if f.read().strip() != "nginx" or os.stat(f"/proc/{pid}/ns/net").st_ino != pod_ns:
                    continue
            uids.add(os.stat(f"/proc/{pid}").st_uid)
        except OSError:
            continue  # gone
    return uids


def effective(pid: int | str = "self") -> int:
    with open(f"/proc/{pid}/status") as f:
        return int(next(line for line in f if line.startswith("CapEff:")).split()[1], 16)


def start_collector(lab, caps: list[str], log_path: str) -> tuple[subprocess.Popen, int, str]:
    port, pin_dir = free_port(), unique_pin_dir()
    bounding = ",".join(["-all", *(f"+{c.lower()}" for c in caps)])
    cmd = ["setpriv", "--inh-caps=-all", f"--bounding-set={bounding}", sys.executable, "-m", "flowscope",
           "collector", "--lab-state", lab.state_path, "--node-name", lab.state.pods[0].node, "--pin-dir", pin_dir,
           "--listen-address", f"127.0.0.1:{port}", "--unix-socket", "", "--l7-tls", "on"]
    with open(log_path, "w") as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    return proc, port, pin_dir


def log_has(path: str, text: str) -> bool:
    with open(path) as f:
        return text in f.read()


def tls_responses(port: int) -> collections.Counter:
    out = subprocess.run([sys.executable, "-m", "flowscope", "observe", "--server", f"127.0.0.1:{port}", "--all",
                          "--protocol", "http", "-o", "json", "--flowscope-fields"],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    flows = [json.loads(line)["flow"] for line in out.stdout.splitlines()]
    return collections.Counter((f["l7"]["http"]["url"].rsplit("8443", 1)[1], f["l7"]["http"]["code"])
                               for f in flows if f.get("l7_tls") and f["l7"]["type"] == "RESPONSE")


@pytest.mark.parametrize("without", ["", "SYS_PTRACE"])
def test_the_daemonsets_capabilities_are_enough_for_the_tls_capture(lab_factory, nginx_tls, tmp_path, without):
    caps = [c for c in daemonset_capabilities() if c != without]
    lab = lab_factory(topology(nginx_tls))
    wait_listening(lab, "web", 8443)
    assert nginx_uids(lab.pod("web").netns) == {0, NOBODY}, "nginx's master runs as root, its worker as nobody"
    log_path = str(tmp_path / "collector.log")
    proc, port, pin_dir = start_collector(lab, caps, log_path)
    try:
        wait_for(lambda: proc.poll() is not None or log_has(log_path, "Observer API on"), 60, "the collector's start")
        assert proc.poll() is None, open(log_path).read()
        granted = sum(1 << CAP_NAMES[c] for c in caps) & effective()
        assert effective(proc.pid) == granted, "the collector runs with the DaemonSet's capabilities (those this machine has)"
        if without:
            assert log_has(log_path, "without CAP_SYS_PTRACE the kernel hides /proc/PID/maps"), open(log_path).read()
        else:
            wait_for(lambda: log_has(log_path, "TLS: uprobes on /proc/"), 15, "uprobes on nginx's libssl")
            assert not log_has(log_path, "TLS capture off"), open(log_path).read()
        web = lab.pod("web").ipv4
        client = curl(lab, [f"https://{web}:8443{p}" for p in PATHS], "--http1.1")
        assert sum(client.values()) == len(PATHS)
        if without:
            assert tls_responses(port) == {}
            return
        wait_for(lambda: tls_responses(port) == client, 15, f"the TLS responses curl saw: {client}")
    finally:
        terminate(proc)
        shutil.rmtree(pin_dir, ignore_errors=True)
        assert "Traceback" not in open(log_path).read(), open(log_path).read()
