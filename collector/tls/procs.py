"""Which TLS libraries the pod processes use, from /proc: libssl files to probe, and processes whose
TLS the uprobes cannot see (a TLS library linked into the program or into one of the files it maps).

A pod process is one whose network namespace is not the host's. Uprobes attach per file, so the scan
returns files by identity (device, inode) with a path that reaches them from the host
(/proc/PID/root/...: a container's own libssl lives in its own filesystem)."""

from __future__ import annotations

import mmap
import os
import re
from dataclasses import dataclass, field

from collector.tls.netns import nsid_of

FileId = tuple[int, int]  # (st_dev, st_ino)
_LIBSSL = re.compile(r"/libssl\.so[.\d]*$")
_LIBCRYPTO = re.compile(r"/libcrypto\.so[.\d]*$")
# Bytes a TLS implementation leaves in a file it is linked into, even stripped: Go's crypto/tls
# package path (Go keeps function names), BoringSSL's name, and the source paths libssl's error
# reporting keeps (OpenSSL). A program that merely links libssl dynamically has none of them (its
# OpenSSL version text does not count: nginx and Python's _hashlib carry it). Checked in every file a
# pod process maps except libssl and libcrypto themselves, whether or not it also maps libssl: PyPI's
# grpcio carries BoringSSL inside a Python that has loaded libssl for its own ssl module.
STATIC_MARKERS = ((b"crypto/tls.", "Go crypto/tls"), (b"BoringSSL", "BoringSSL"), (b"ssl/statem/", "OpenSSL"))
NOT_VISIBLE = "TLS not visible: statically linked"


@dataclass
class ProcessTls:
    pid: int
    start: int          # start time (clock ticks): a pid reused later is another process
    netns: int
    comm: str
    nsid: int | None = None  # the host's id of its network namespace (collector.tls.netns)
    libssl: dict[FileId, str] = field(default_factory=dict)  # id -> host path
    static: str = ""    # "<implementation> in <file>" when TLS is linked in statically


CAP_SYS_PTRACE = 19
INIT_PID_NS = 0xEFFFFFFC  # the kernel's fixed inode number of the initial PID namespace (PROC_PID_INIT_INO)


def visibility_problem(ns_path: str = "/proc/self/ns/pid") -> str:
    """'' if this process can see the node's processes, else why not (one line). In its own PID
    namespace (a pod without hostPID) /proc lists the collector's container alone: no pod process."""
    try:
        pid_ns = os.stat(ns_path).st_ino
    except OSError as err:
        return f"cannot read {ns_path}: {err.strerror}"
    if pid_ns != INIT_PID_NS:
        return ("the collector runs in its own PID namespace and sees no pod process in /proc "
                "(Kubernetes: hostPID: true on its pod; or --l7-tls off)")
    return ""


def can_read_other_users(status_path: str = "/proc/self/status") -> bool:
    """The kernel shows /proc/PID/maps, ns/net and root of another user's process (most pod processes)
    only to a process with CAP_SYS_PTRACE."""
    try:
        with open(status_path) as f:
            caps = next((line.split()[1] for line in f if line.startswith("CapEff:")), "0")
        return bool(int(caps, 16) >> CAP_SYS_PTRACE & 1)
    except (OSError, ValueError):
        return False


def host_netns() -> int:
    return os.stat("/proc/self/ns/net").st_ino  # the collector runs in the host namespace


def _start_time(pid: int) -> int:
    with open(f"/proc/{pid}/stat", "rb") as f:
        stat = f.read()
    return int(stat[stat.rindex(b")") + 2:].split()[19])


def mapped_files(pid: int) -> list[str]:
    """Paths of the files mapped executable by `pid` (as the process names them)."""
    paths = []
    with open(f"/proc/{pid}/maps") as f:
        for line in f:
            parts = line.split(None, 5)
            if len(parts) == 6 and "x" in parts[1] and parts[5].startswith("/"):
                path = parts[5].rstrip("\n")
                if not path.endswith(" (deleted)") and path not in paths:
                    paths.append(path)
    return paths


class StaticScanner:
    """Answers "which TLS implementation is linked into this file", once per file identity."""

    def __init__(self) -> None:
        self._known: dict[FileId, str] = {}

    def implementation(self, file_id: FileId, path: str) -> str:
        found = self._known.get(file_id)
        if found is None:
            found = ""
            try:
                with open(path, "rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as data:
                    found = next((name for marker, name in STATIC_MARKERS if data.find(marker) >= 0), "")
            except (OSError, ValueError):  # gone, or empty (mmap of 0 bytes)
                pass
            self._known[file_id] = found
        return found


def scan_process(pid: int, scanner: StaticScanner, host_ns: int,
                 nsids: dict[int, int | None] | None = None) -> ProcessTls | None:
    """The TLS view of one pod process; None for host processes and processes that vanished.
    `nsids` caches each network namespace's nsid (by inode) across the processes of a scan."""
    try:
        netns = os.stat(f"/proc/{pid}/ns/net").st_ino
        if netns == host_ns:
            return None
        start = _start_time(pid)
        with open(f"/proc/{pid}/comm") as f:
            comm = f.read().strip()
        paths = mapped_files(pid)
    except (OSError, ValueError, IndexError):
        return None
    if nsids is None:
        nsids = {}
    if netns not in nsids:
        nsids[netns] = nsid_of(f"/proc/{pid}/ns/net")
    proc = ProcessTls(pid, start, netns, comm, nsids[netns])
    others: list[tuple[FileId, str, str]] = []
    for path in paths:
        host_path = f"/proc/{pid}/root{path}"
        try:
            st = os.stat(host_path)
        except OSError:
            continue
        file_id = (st.st_dev, st.st_ino)
        if _LIBSSL.search(path):
            proc.libssl[file_id] = host_path
        elif not _LIBCRYPTO.search(path):
            others.append((file_id, host_path, path))
    for file_id, host_path, path in others:
        name = scanner.implementation(file_id, host_path)
        if name:
            proc.static = f"{name} in {path}"
            break
    return proc


def scan(scanner: StaticScanner, host_ns: int | None = None, proc_dir: str = "/proc") -> dict[int, ProcessTls]:
    """Every pod process now, by pid."""
    host_ns = host_netns() if host_ns is None else host_ns
    found: dict[int, ProcessTls] = {}
    nsids: dict[int, int | None] = {}
    for name in os.listdir(proc_dir):
        if name.isdigit():
            proc = scan_process(int(name), scanner, host_ns, nsids)
            if proc is not None:
                found[proc.pid] = proc
    return found
