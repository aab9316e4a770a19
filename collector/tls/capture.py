"""The running TLS capture: uprobes on every libssl the pod processes map, their events turned into
L7 flows beside the TC datapath's.

One thread reads the perf rings in bulk (collector.datapath.perfring), holds events for a reorder
window (each CPU's ring is in order, the rings are not: a request and its response may sit in two)
and translates them; every `sync_interval_s` it scans /proc for pod processes, attaches to libssl
files not seen before, detaches from files no process maps any more, and reports once per process
the TLS it cannot see (a TLS library linked into the program)."""

from __future__ import annotations

import ipaddress
import logging
import os
import resource
import struct
import threading
from collections import Counter
from dataclasses import dataclass
from typing import Callable

from collector.datapath.datapath import PUBLISH_BATCH
from collector.datapath.decoder import Decoder
from collector.datapath.perfring import BccRings, PerfRings, open_rings, reader_loop, take_until
from collector.tls import netns, procs
from collector.tls.loader import TlsCaptureError, TlsProgram, TlsProgramConfig
from collector.tls.translate import TlsTranslator
from common.endpoints import EndpointSource

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TlsCaptureConfig:
    program: TlsProgramConfig = TlsProgramConfig()
    perf_pages: int = 256
    reorder_window_s: float = 0.05
    sync_interval_s: float = 1.0


def lift_memlock_limit() -> None:
    """Perf ring pages beyond the per-user allowance (kernel.perf_event_mlock_kb per CPU) count against
    RLIMIT_MEMLOCK unless the process has CAP_IPC_LOCK; the datapath's rings take the allowance, the TLS
    capture's come after them. CAP_SYS_RESOURCE lifts the limit (as libbpf's programs do), else the
    soft limit goes up to the hard one."""
    try:
        resource.setrlimit(resource.RLIMIT_MEMLOCK, (resource.RLIM_INFINITY, resource.RLIM_INFINITY))
    except (ValueError, OSError):
        _soft, hard = resource.getrlimit(resource.RLIMIT_MEMLOCK)
        resource.setrlimit(resource.RLIMIT_MEMLOCK, (hard, hard))


class TlsCapture:
    """`decoder` is a collector.datapath Decoder made with tls=True and its own L7 dispatcher (this
    thread's); `sink` receives lists of flows (Observer.publish_many)."""

    def __init__(self, config: TlsCaptureConfig, endpoints: EndpointSource, decoder: Decoder,
                 sink: Callable[[list], None], scan: Callable[[], dict[int, procs.ProcessTls]] | None = None,
                 device_nsids: Callable[[], dict[int, int]] = netns.device_nsids) -> None:
        self.config = config
        self.endpoints = endpoints
        self.decoder = decoder
        self.sink = sink
        self.translator = TlsTranslator(decoder, resolve_netns=self._resolve_netns)
        self.program = TlsProgram(config.program)
        self.not_visible: Counter = Counter()  # reason -> processes reported
        self.lost = 0
        self.decode_errors = 0
        self.flows = 0
        self._scanner = procs.StaticScanner()
        self._scan = scan or (lambda: procs.scan(self._scanner))
        self._device_nsids = device_nsids
        self._procs: dict[int, procs.ProcessTls] = {}
        self._reported: set[tuple[int, int]] = set()
        self._pod_names: dict[int, str] = {}  # nsid of a local pod's namespace -> namespace/name
        self._by_nsid: dict[int, int] = {}    # nsid of a local pod's namespace -> its device's ifindex
        self._failed: set[procs.FileId] = set()
        self._pending: list[tuple[int, bytes]] = []
        self._rings: PerfRings | BccRings | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Raises TlsCaptureError (one line: why) if this machine cannot run it."""
        reason = procs.visibility_problem()
        if reason:
            raise TlsCaptureError(f"TLS capture off: {reason}")
        if not procs.can_read_other_users():
            log.warning("TLS capture: without CAP_SYS_PTRACE the kernel hides /proc/PID/maps of processes run "
                        "by other users (uid %d sees only its own): their TLS is not seen", os.geteuid())
        bpf = self.program.load()
        from bcc.utils import get_online_cpus

        try:
            lift_memlock_limit()
            try:
                self._rings = open_rings(bpf, bpf[b"tls_events"], get_online_cpus(), self.config.perf_pages)
            except PermissionError:
                raise TlsCaptureError(
                    f"TLS capture off: the kernel refused to map its perf rings ({self.config.perf_pages} pages "
                    "per CPU of locked memory, over RLIMIT_MEMLOCK): the collector needs CAP_IPC_LOCK or "
                    "CAP_SYS_RESOURCE") from None
            self.sync()
        except BaseException:
            self.stop()
            raise
        self._thread = threading.Thread(target=self._run, name="flowscope-tls", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        if self._rings is not None:
            if self._thread is None or not self._thread.is_alive():
                self._read()
                self._release(1 << 63)
            self._rings.close()
            self._rings = None
        self.program.close()

    @property
    def libraries(self) -> int:
        return len(self.program.attached)

    def _run(self) -> None:
        config = self.config
        reader_loop(self._stop, self._rings, self._read, self._release, config.reorder_window_s,
                    config.sync_interval_s, self.sync, "TLS capture")

    def _read(self) -> None:
        self.lost += self._rings.drain(self._pending)

    def _release(self, horizon_ns: int) -> None:
        if not self._pending:
            return
        ready, self._pending = take_until(self._pending, horizon_ns)
        feed, flows = self.translator.feed, []
        for _ts, raw in ready:
            try:
                flows += feed(raw)
            except Exception as err:  # noqa: BLE001 - one bad event is counted, never fatal
                self.decode_errors += 1
                if not isinstance(err, struct.error):
                    log.exception("decoding a TLS event")
        for start in range(0, len(flows), PUBLISH_BATCH):
            self._publish(flows[start:start + PUBLISH_BATCH])

    def _publish(self, flows: list) -> None:
        if not flows:
            return
        self.flows += len(flows)
        try:
            self.sink(flows)
        except Exception:
            log.exception("publishing %d TLS flows", len(flows))

    # -- following processes and pods ------------------------------------------------------------

    def sync(self) -> None:
        found = self._scan()
        self._sync_pods(found)
        for pid, old in self._procs.items():
            new = found.get(pid)
            if new is None or new.start != old.start:
                self.translator.forget_process(pid)
                self._reported.discard((pid, old.start))
        self._procs = found
        wanted: dict[procs.FileId, str] = {}
        for proc in found.values():
            for file_id, path in proc.libssl.items():
                wanted.setdefault(file_id, path)
            if proc.static and (proc.pid, proc.start) not in self._reported:
                pod = self._pod_names.get(proc.nsid) if proc.nsid is not None else None
                if pod is None:
                    continue  # not a pod of this collector's (another node's, or no pod at all)
                self._reported.add((proc.pid, proc.start))
                self.not_visible[procs.NOT_VISIBLE] += 1
                log.warning("pod %s process %d (%s): %s (%s); its requests are seen only where the other "
                            "end is visible", pod, proc.pid, proc.comm, procs.NOT_VISIBLE, proc.static)
        for file_id in set(self.program.attached) - set(wanted):
            self.program.detach(file_id)
            log.info("TLS: detached from %s (no pod process maps it)", file_id)
        for file_id, path in wanted.items():
            if file_id in self.program.attached or file_id in self._failed:
                continue
            try:
                symbols = self.program.attach(file_id, path)
            except Exception as err:  # noqa: BLE001 - bcc: the file vanished or is not an ELF
                symbols, reason = 0, str(err)
            else:
                reason = "exports none of SSL_write, SSL_write_ex, SSL_read, SSL_read_ex"
            if symbols:
                log.info("TLS: uprobes on %s (%d calls)", path, symbols)
            else:
                self._failed.add(file_id)
                log.warning("TLS: cannot probe %s: %s", path, reason)
        self.decoder.invalidate()
        self.decoder.sync_clock()

    def _sync_pods(self, found: dict[int, procs.ProcessTls]) -> None:
        """Local pods by address (the far end of a connection) and by network namespace (the process's
        own end: a pod's device links to its namespace's nsid)."""
        pods: dict[bytes, int] = {}
        names: dict[int, str] = {}
        by_nsid: dict[int, int] = {}
        device_nsid = self._device_nsids()
        for ep in self.endpoints.local_endpoints():
            for ip in ep.ips:
                if ip:
                    pods[ipaddress.ip_address(ip).packed.ljust(16, b"\0")] = ep.ifindex
            nsid = device_nsid.get(ep.ifindex)
            if nsid is not None:
                names[nsid] = f"{ep.namespace}/{ep.pod_name}"
                by_nsid[nsid] = ep.ifindex
        self.translator.set_pods(pods, {proc.netns: by_nsid[proc.nsid] for proc in found.values()
                                        if proc.nsid in by_nsid})
        self._pod_names = names
        self._by_nsid = by_nsid

    def _resolve_netns(self, tgid: int, netns_inode: int) -> int | None:
        """The pod device of a namespace first met in an event: through its process, if still alive."""
        path = f"/proc/{tgid}/ns/net"
        try:
            if os.stat(path).st_ino != netns_inode:
                return None
        except OSError:
            return None
        nsid = netns.nsid_of(path)
        return self._by_nsid.get(nsid) if nsid is not None else None
