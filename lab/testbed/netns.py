"""Throwaway network namespaces for tests and benchmarks: a namespace with only loopback, servers run in
the background inside it, commands run to completion inside it, and tcpdump writing a pcap of its
loopback while they do. Lab pods (lab/) are for whole topologies; this is for one client and one server."""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import shutil
import signal
import subprocess
import time
from pathlib import Path

from lab.testbed.wait import wait_for

REPO = Path(__file__).resolve().parents[2]


def need(binary: str) -> str:
    """The binary's path; fails naming it when it is not installed."""
    path = shutil.which(binary)
    assert path, f"{binary} is required here (deploy/local/setup.sh installs it)"
    return path


@contextlib.contextmanager
def netns():
    """A fresh network namespace with loopback up; its ports are private to the caller."""
    name = "l7t" + secrets.token_hex(4)
    subprocess.run(["ip", "netns", "add", name], check=True)
    try:
        subprocess.run(["ip", "netns", "exec", name, "ip", "link", "set", "lo", "up"], check=True)
        yield name
    finally:
        for pid in subprocess.run(["ip", "netns", "pids", name], capture_output=True, text=True).stdout.split():
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(pid), signal.SIGKILL)
        subprocess.run(["ip", "netns", "del", name], check=False)


def in_ns(ns: str, cmd: list[str]) -> list[str]:
    return ["ip", "netns", "exec", ns, *cmd]


def run(ns: str, cmd: list[str], timeout: float = 60, **kw) -> subprocess.CompletedProcess:
    """cmd inside the namespace, to completion; a non-zero exit fails with its stderr."""
    result = subprocess.run(in_ns(ns, cmd), capture_output=True, text=True, timeout=timeout, **kw)
    assert result.returncode == 0, f"{cmd[0]} failed ({result.returncode}): {result.stderr[-2000:]}"
    return result


@contextlib.contextmanager
def background(ns: str, cmd: list[str], ready: str | None = None, timeout: float = 15):
    """A server inside the namespace; waits for `ready` on its stdout (or a short settle) and kills it after."""
    proc = subprocess.Popen(in_ns(ns, cmd), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            cwd=REPO)
    try:
        if ready is not None:
            deadline = time.monotonic() + timeout
            seen = []
            while time.monotonic() < deadline:
                line = proc.stdout.readline()
                if not line:
                    raise AssertionError(f"{cmd[0]} exited before ready: {''.join(seen)[-2000:]}")
                seen.append(line)
                if ready in line:
                    break
            else:
                raise AssertionError(f"{cmd[0]} not ready after {timeout}s")
        else:
            time.sleep(0.3)
            assert proc.poll() is None, f"{cmd[0]} exited: {proc.stdout.read()[-2000:]}"
        yield proc
    finally:
        proc.kill()
        proc.wait()


def wait_port(ns: str, port: int, udp: bool = False, timeout: float = 10) -> None:
    flag = "-lun" if udp else "-ltn"
    wait_for(lambda: f":{port} " in subprocess.run(in_ns(ns, ["ss", "-H", flag]), capture_output=True,
                                                   text=True).stdout, timeout, f"a listener on port {port} in {ns}")


@contextlib.contextmanager
def tcpdump(ns: str, pcap: Path, bpf_filter: str = "", snaplen: int = 0, strict: bool = True):
    """tcpdump on the namespace's loopback (full packets unless snaplen), until the block ends. Yields a
    dict that gets "dropped" (packets the kernel dropped) at the end; strict: any drop fails the caller."""
    need("tcpdump")
    cmd = ["tcpdump", "-i", "lo", "-s", str(snaplen), "-U", "--immediate-mode", "-B", "65536", "-w", str(pcap),
           *bpf_filter.split()]
    proc = subprocess.Popen(in_ns(ns, cmd), stderr=subprocess.PIPE, text=True)
    line = proc.stderr.readline()
    assert "listening on" in line, f"tcpdump did not start: {line}"
    info = {"dropped": None}
    try:
        yield info
    finally:
        time.sleep(0.2)  # let the last packets reach the file
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=10)
        report = proc.stderr.read()
        found = re.search(r"^(\d+) packets dropped by kernel", report, re.M)
        info["dropped"] = int(found.group(1)) if found else None
        if strict:
            assert info["dropped"] == 0, f"tcpdump lost packets, the comparison is void: {report}"
