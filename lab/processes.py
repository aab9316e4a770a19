"""Commands running inside lab hosts: started detached (they outlive `flowscope lab up`), each in its own
session so that stopping it stops its children (a shell loop's curl), and recorded with the process start
time so that `lab down` never signals an unrelated process that reused the pid.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

from lab.state import HostState, Process

# Repository root: commands may run flowscope's own helpers (`$FLOWSCOPE_PYTHON -m lab.apps.httpd`).
_REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def command_env(host: HostState) -> dict[str, str]:
    """Environment of a lab command: the lab's python and a few facts about the host it runs in."""
    return {
        **os.environ,
        "FLOWSCOPE_PYTHON": sys.executable,
        "PYTHONPATH": _REPO + (os.pathsep + os.environ["PYTHONPATH"] if os.environ.get("PYTHONPATH") else ""),
        "POD_NAME": host.name,
        "POD_NAMESPACE": host.namespace,
        "POD_IP": host.ipv4,
        "POD_IPV6": host.ipv6,
    }


def start(host: HostState, command: str, log_path: str) -> Process:
    with open(log_path, "ab") as log:
        proc = subprocess.Popen(
            ["ip", "netns", "exec", host.netns, "sh", "-c", command],
            stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True, env=command_env(host), cwd="/tmp")
    return Process(command=command, pid=proc.pid, start_time=start_time(proc.pid), log=log_path)


def start_time(pid: int) -> int:
    """Field 22 of /proc/<pid>/stat (clock ticks since boot); 0 if the process is gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            stat = f.read()
    except OSError:
        return 0
    return int(stat.rsplit(")", 1)[1].split()[19])


def is_running(proc: Process) -> bool:
    return bool(proc.pid) and start_time(proc.pid) == proc.start_time and _alive(proc.pid)


def stop(processes: list[Process], netns_pids: list[int], timeout: float = 2.0) -> None:
    """SIGTERM our process groups (and stragglers left in our namespaces), SIGKILL after `timeout`."""
    targets = [p.pid for p in processes if is_running(p)]
    for pid in targets:
        _signal_group(pid, signal.SIGTERM)
    for pid in netns_pids:
        _signal(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    pending = targets + netns_pids
    while pending and time.monotonic() < deadline:
        pending = [pid for pid in pending if _alive(pid)]
        if pending:
            time.sleep(0.02)
    for pid in pending:
        _signal_group(pid, signal.SIGKILL)
        _signal(pid, signal.SIGKILL)


def netns_pids(netns: str) -> list[int]:
    out = subprocess.run(["ip", "netns", "pids", netns], capture_output=True, text=True, check=False).stdout
    return [int(p) for p in out.split()]


def _alive(pid: int) -> bool:
    """Exists and is not a zombie (an exited child of ours that nobody reaped yet)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def _signal_group(pid: int, sig: int) -> None:
    try:
        os.killpg(pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def _signal(pid: int, sig: int) -> None:
    try:
        os.kill(pid, sig)
    except (ProcessLookupError, PermissionError):
        pass

