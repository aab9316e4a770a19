"""The lab's state file: everything `lab up` made, written BEFORE it is made, so that `lab down` can
remove it all, also after a crash half-way through `lab up`.

Format (JSON, /run/flowscope/lab/<lab>.json):
    {"version": 1, "name": "demo", "topology": "deploy/lab/demo.yaml", "created": <unix seconds>,
     "run_dir": "/run/flowscope/lab/demo", "nodes": ["node-a"],
     "hosts": [{"kind": "pod" | "world", "name", "namespace", "labels", "namespace_labels",
                "workload_name", "workload_kind", "service_account", "node", "netns", "device",
                "ifindex", "ipv4", "ipv6", "dns_names": [...], "cluster_dns": bool,
                "processes": [{"command", "pid", "start_time", "log"}]}],
     "dns": {"ipv4", "ipv6", "hosts_file"} | null}
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import json
import os
import pathlib
import time
from dataclasses import dataclass, field
from typing import IO, Iterator

from common.errors import UserError

DEFAULT_STATE_DIR = "/run/flowscope/lab"
STATE_VERSION = 1


class StateError(UserError):
    """A missing or unreadable lab state file."""


@dataclass
class Process:
    """A command `lab up` started inside a host's namespace (its own session: pid == process group)."""

    command: str
    pid: int = 0
    start_time: int = 0  # /proc/<pid>/stat field 22: tells our process from a later one with its pid
    log: str = ""


@dataclass
class HostState:
    """A pod (kind "pod") or an outside host (kind "world"): its namespace, veth and addresses."""

    kind: str
    name: str
    netns: str
    device: str
    ipv4: str
    ipv6: str
    namespace: str = ""
    labels: dict[str, str] = field(default_factory=dict)
    namespace_labels: dict[str, str] = field(default_factory=dict)
    workload_name: str = ""
    workload_kind: str = ""
    service_account: str = "default"
    node: str = ""
    ifindex: int = 0
    dns_names: list[str] = field(default_factory=list)
    cluster_dns: bool = False
    processes: list[Process] = field(default_factory=list)

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}" if self.kind == "pod" else f"world/{self.name}"


@dataclass
class DnsState:
    ipv4: str
    ipv6: str
    hosts_file: str


@dataclass
class LabState:
    name: str
    run_dir: str
    topology: str = ""
    created: float = field(default_factory=time.time)
    nodes: list[str] = field(default_factory=list)
    hosts: list[HostState] = field(default_factory=list)
    dns: DnsState | None = None
    version: int = STATE_VERSION
    path: str = field(default="", compare=False)

    @property
    def pods(self) -> list[HostState]:
        return [h for h in self.hosts if h.kind == "pod"]

    @property
    def world(self) -> list[HostState]:
        return [h for h in self.hosts if h.kind == "world"]

    def save(self) -> None:
        """Atomic write: a reader (a collector, `lab down`) never sees half a file."""
        data = dataclasses.asdict(self)
        data.pop("path")
        target = pathlib.Path(self.path)
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps(data, indent=1, sort_keys=True))
        tmp.replace(target)


def state_path(name: str, state_dir: str | None = None) -> str:
    return os.path.join(state_dir or DEFAULT_STATE_DIR, f"{name}.json")


def load_state(path: str) -> LabState:
    try:
        data = json.loads(pathlib.Path(path).read_text())
    except FileNotFoundError:
        raise StateError(f"{path}: no lab state file (is the lab up? run `flowscope lab up -f ...`)") from None
    except (OSError, ValueError) as err:
        raise StateError(f"{path}: unreadable lab state file ({err}); expected JSON written by "
                         f"`flowscope lab up`") from None
    if data.get("version") != STATE_VERSION:
        raise StateError(f"{path}: lab state version {data.get('version')!r}, expected {STATE_VERSION}")
    hosts = [HostState(**{**h, "processes": [Process(**p) for p in h.get("processes", [])]})
             for h in data.pop("hosts", [])]
    dns = DnsState(**data["dns"]) if data.get("dns") else None
    return LabState(**{**data, "hosts": hosts, "dns": dns, "path": path})


def state_files(state_dir: str | None = None) -> list[str]:
    directory = pathlib.Path(state_dir or DEFAULT_STATE_DIR)
    if not directory.is_dir():
        return []
    return sorted(str(p) for p in directory.glob("*.json"))


WATCH_LOCK = ".watchers.lock"


def watch_lock(state_dir: str | None = None) -> IO | None:
    """A shared lock on the state dir's watchers file, held (the file kept open) by every process that
    reads the labs as its endpoints (the collector, `flowscope up`), so `lab up` can tell a lab is
    watched before it tears the lab down to recreate it. None where the dir cannot be written."""
    directory = pathlib.Path(state_dir or DEFAULT_STATE_DIR)
    try:
        directory.mkdir(parents=True, exist_ok=True)
        lock = open(directory / WATCH_LOCK, "a")
    except OSError:
        return None
    fcntl.flock(lock, fcntl.LOCK_SH)
    return lock


def watched(state_dir: str | None = None) -> bool:
    """True while another process holds watch_lock() on `state_dir`."""
    path = pathlib.Path(state_dir or DEFAULT_STATE_DIR) / WATCH_LOCK
    try:
        lock = open(path, "a")
    except OSError:
        return False
    with lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        fcntl.flock(lock, fcntl.LOCK_UN)
        return False


@contextlib.contextmanager
def state_lock(state_dir: str | None = None) -> Iterator[None]:
    """Serialises address allocation between concurrent `lab up`s (tests run labs in parallel)."""
    directory = pathlib.Path(state_dir or DEFAULT_STATE_DIR)
    directory.mkdir(parents=True, exist_ok=True)
    with open(directory / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
