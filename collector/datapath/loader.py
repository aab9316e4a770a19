"""Compile and load bpf/flowscope.c with bcc, like bcc's tools: the C file as written, options as cflags.

Before compiling, say clearly what is missing: privileges (root or CAP_BPF + CAP_NET_ADMIN + CAP_PERFMON)
and kernel headers (bcc needs them; `make setup` links Debian's to this kernel)."""

from __future__ import annotations

import os
import pathlib
from dataclasses import dataclass, field

from collector.datapath.events import AGGREGATION_LEVELS
from common.errors import UserError

BPF_DIR = pathlib.Path(__file__).resolve().parents[2] / "bpf"
SOURCE = BPF_DIR / "flowscope.c"
DEFAULT_PIN_DIR = "/sys/fs/bpf/flowscope"
PROGRAMS = ("from_pod", "to_pod")
PERF_READERS = ("auto", "bulk", "bcc")

CAP_NET_ADMIN = 12
CAP_SYS_ADMIN = 21
CAP_PERFMON = 38
CAP_BPF = 39


class DatapathError(UserError):
    """The datapath cannot start; the message says what to fix."""


class PermissionDenied(DatapathError):
    pass


class KernelHeadersMissing(DatapathError):
    pass


@dataclass(frozen=True)
class DatapathConfig:
    aggregation: str = "medium"  # none | medium | max
    update_interval_s: float = 10.0  # medium: counters of long-lived connections at least this often
    payload_bytes: int = 512  # L7 prefix of each data segment
    stream_segment_bytes: int = 16384  # L7 stream mode (HTTP/2, Kafka): bytes per segment
    l7_budget: int = 1 << 20  # L7 stream mode: bytes per connection
    l7_ports: tuple[int, ...] = (80, 8080, 8000)  # prefix capture (DNS 53 is always on)
    stream_ports: tuple[int, ...] = (9092,)  # capture every segment from the start
    ct_size: int = 131072
    pin_dir: str = DEFAULT_PIN_DIR
    perf_pages: int = 1024  # per CPU, power of two (4 MiB: rides out a starved reader for a while)
    # "auto": the bulk reader where plain accesses are ordered (x86), bcc's elsewhere (perfring.py says why)
    perf_reader: str = "auto"
    close_grace_s: float = 2.0  # a closed TCP connection leaves the table after this idle time
    tcp_idle_s: float = 600.0
    other_idle_s: float = 60.0
    sync_interval_s: float = 1.0  # endpoint following and connection-table GC
    # Events wait this long to be decoded in kernel-time order: each CPU has its own perf ring, and a
    # connection's segments handled on two CPUs must reach the L7 parsers (HPACK!) in order.
    reorder_window_s: float = 0.02
    extra_cflags: tuple[str, ...] = field(default=())  # e.g. the enforcer's PolicyMaps.cflags()

    def __post_init__(self) -> None:
        if self.aggregation not in AGGREGATION_LEVELS:
            raise DatapathError(f"aggregation {self.aggregation!r}: expected one of "
                                f"{', '.join(AGGREGATION_LEVELS)}")
        if not 0 < self.payload_bytes <= 16384:
            raise DatapathError(f"payload bytes {self.payload_bytes}: expected 1..16384")
        if self.perf_reader not in PERF_READERS:
            raise DatapathError(f"perf reader {self.perf_reader!r}: expected one of {', '.join(PERF_READERS)}")
        if self.perf_pages <= 0 or self.perf_pages & (self.perf_pages - 1):
            raise DatapathError(f"perf pages {self.perf_pages}: expected a power of two")
        for port in (*self.l7_ports, *self.stream_ports):
            if not 0 < port < 65536:
                raise DatapathError(f"L7 port {port}: expected 1..65535")


def cflags(config: DatapathConfig) -> list[str]:
    return [
        f"-I{BPF_DIR}",
        f"-DAGGREGATION={AGGREGATION_LEVELS[config.aggregation]}",
        f"-DUPDATE_INTERVAL_NS={int(config.update_interval_s * 1e9)}ULL",
        f"-DPAYLOAD_BYTES={config.payload_bytes}",
        f"-DSTREAM_SEGMENT_BYTES={config.stream_segment_bytes}",
        f"-DL7_BUDGET={config.l7_budget}",
        f"-DCT_SIZE={config.ct_size}",
        f'-DFLOWSCOPE_PIN_DIR="{config.pin_dir}"',
        *config.extra_cflags,
    ]


def program_text(config: DatapathConfig) -> str:
    """What --dump-bpf prints: the options and the C as compiled."""
    parts = ["// cflags: " + " ".join(cflags(config))]
    for path in (BPF_DIR / "flowscope.h", BPF_DIR / "l7_limits.h", SOURCE):
        parts.append(f"// ---- {path.name}\n{path.read_text()}")
    return "\n".join(parts)


def effective_capabilities() -> int:
    for line in pathlib.Path("/proc/self/status").read_text().splitlines():
        if line.startswith("CapEff:"):
            return int(line.split()[1], 16)
    return 0


def check_privileges(caps: int | None = None) -> None:
    caps = effective_capabilities() if caps is None else caps
    has = lambda cap: bool(caps >> cap & 1)  # noqa: E731
    if has(CAP_SYS_ADMIN) and has(CAP_NET_ADMIN):
        return
    if has(CAP_BPF) and has(CAP_PERFMON) and has(CAP_NET_ADMIN):
        return
    raise PermissionDenied("loading the eBPF datapath needs root (CAP_BPF, CAP_PERFMON and CAP_NET_ADMIN, "
                           f"or CAP_SYS_ADMIN); running as uid {os.geteuid()} without them: "
                           "run `sudo flowscope collector`")


def kernel_headers_dir() -> pathlib.Path:
    override = os.environ.get("BCC_KERNEL_SOURCE")
    return pathlib.Path(override) if override else pathlib.Path("/lib/modules", os.uname().release, "build")


def check_kernel_headers() -> None:
    path = kernel_headers_dir()
    if not (path / "include").is_dir():
        raise KernelHeadersMissing(f"kernel headers for {os.uname().release} not found at {path}: bcc needs "
                                   "them; run `make setup` (deploy/local/setup.sh installs linux-headers-amd64 "
                                   "and links them for this kernel)")


def prepare_pin_dir(pin_dir: str) -> None:
    """The pin dir must be on bpffs; create it (maps pinned there survive a collector restart)."""
    fstype, mount = _mount_of(pin_dir)
    if fstype != "bpf":
        raise DatapathError(f"pin dir {pin_dir}: expected a directory on a bpf filesystem, {mount} is {fstype} "
                            "(mount one with `mount -t bpf bpf /sys/fs/bpf`)")
    try:
        os.makedirs(pin_dir, exist_ok=True)
    except PermissionError as err:
        raise PermissionDenied(f"pin dir {pin_dir}: {err.strerror}; run as root") from err


def _mount_of(path: str) -> tuple[str, str]:
    best = ("", "/")
    absolute = os.path.abspath(path)
    for line in pathlib.Path("/proc/mounts").read_text().splitlines():
        _dev, mount, fstype, *_ = line.split()
        if (absolute == mount or absolute.startswith(mount.rstrip("/") + "/")) and len(mount) >= len(best[1]):
            best = (fstype, mount)
    return best


def load(config: DatapathConfig):
    """Compile and load both programs; returns (bpf, {program name: fd})."""
    check_privileges()
    check_kernel_headers()
    prepare_pin_dir(config.pin_dir)
    from bcc import BPF  # imported late: Debian's python3-bpfcc, absent from plain venvs

    try:
        bpf = BPF(src_file=str(SOURCE).encode(), cflags=cflags(config))
        fds = {name: bpf.load_func(name.encode(), BPF.SCHED_CLS).fd for name in PROGRAMS}
    except Exception as err:
        text = str(err)
        if "Operation not permitted" in text or "Permission denied" in text:
            raise PermissionDenied(f"the kernel refused the eBPF datapath ({text}): run as root") from err
        raise DatapathError(f"compiling or loading {SOURCE} failed: {text} (compiler output above)") from err
    return bpf, fds
