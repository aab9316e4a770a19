"""The datapath's perf rings read in bulk: one mmap'd ring per CPU, drained by Python a batch at a time.

bcc's reader calls a ctypes Python callback for every sample (~7 µs each here, the largest single cost
of the collector at 10,000 HTTP requests/s). Here the rings are opened with perf_event_open like bcc
does (PERF_COUNT_SW_BPF_OUTPUT, PERF_SAMPLE_RAW) and put into the BPF_PERF_OUTPUT map, but read by
copying each ring's unread bytes out at once and walking the records with one struct unpack each.
The reader wakes up on a timer (the reorder window needs it anyway) or, through epoll and the
ring's watermark, when a ring is a quarter full: no wakeup per sample.

Ring layout (include/uapi/linux/perf_event.h): page 0 is struct perf_event_mmap_page (data_head at
byte 1024, data_tail at 1032, data_offset 1040, data_size 1048); records follow as
{u32 type, u16 misc, u16 size} headers: PERF_RECORD_SAMPLE {u32 raw size, raw bytes (padded)},
PERF_RECORD_LOST {u64 id, u64 lost}.

Memory ordering (the kernel's side: perf_output_put_handle stores data_head with smp_store_release
after the records; perf_output_begin reads data_tail and issues smp_mb before overwriting). The reader
must load data_head with acquire semantics, copy the records, then store data_tail with release
semantics. Python has no fences, so ordering is per architecture (ORDERING below): on x86 (TSO: loads
are not reordered with loads, nor stores with earlier loads) acquire and release need only a compiler
barrier — the kernel's own tools/include/asm/barrier.h makes smp_load_acquire/smp_store_release plain
accesses there — and every access here is a separate opaque C call (an aligned 8-byte ctypes load of
data_head, one memcpy of the records, an aligned 8-byte ctypes store of data_tail), which no compiler
reorders. Weakly ordered CPUs (arm64, ppc64, riscv...) need real barriers: there the datapath reads with
bcc's reader instead (`BccRings`: libbcc's perf_reader does smp_load_acquire/smp_store_release in C).

A record that cannot be walked (a size below its header, not a multiple of 8, or past what the kernel
published) and one of an unknown type are counted as lost, like the kernel's own LOST records: the rest
of the ring after a torn header is unreadable, and is counted (estimated by the records' mean size).
"""

from __future__ import annotations

import bisect
import ctypes
import fcntl
import logging
import mmap
import operator
import os
import platform
import select
import struct
import threading
import time
from dataclasses import dataclass, field
from typing import Callable

PERF_TYPE_SOFTWARE = 1
PERF_COUNT_SW_BPF_OUTPUT = 10
PERF_SAMPLE_RAW = 1 << 10
PERF_ATTR_FLAG_WATERMARK = 1 << 14
PERF_ATTR_SIZE = 112  # PERF_ATTR_SIZE_VER5
PERF_FLAG_FD_CLOEXEC = 1 << 3
PERF_EVENT_IOC_ENABLE = 0x2400
PERF_RECORD_LOST = 2
PERF_RECORD_SAMPLE = 9
# perf_event_open's syscall number by platform.machine() (arch/*/entry/syscalls, include/uapi/asm-generic/unistd.h)
NR_PERF_EVENT_OPEN = {"x86_64": 298, "amd64": 298, "i386": 336, "i686": 336, "aarch64": 241, "arm64": 241,
                      "armv7l": 364, "armv6l": 364, "riscv64": 241, "loongarch64": 241, "ppc64le": 319,
                      "ppc64": 319, "s390x": 331}
# Machines whose plain loads and stores already order as the ring needs (see the module doc).
TSO_MACHINES = frozenset({"x86_64", "amd64", "i386", "i686"})

_ATTR = struct.Struct("<IIQQQQQI")  # type, size, config, sample_period, sample_type, read_format, flags, wakeup_*
_HEAD_TAIL = struct.Struct("<QQQQ")  # data_head, data_tail, data_offset, data_size
_HEAD_OFFSET = 1024
_TAIL_OFFSET = 1032
# A sample's record header, raw size and the event's first field (ts_ns) in one unpack.
_SAMPLE = struct.Struct("<IHHIQ")
_HEADER = struct.Struct("<IHH")  # type, misc, size: all a record shorter than a sample has
_MEAN_GUESS = 64  # bytes per record when a torn header comes first (a flowscope event is ~100)
_LOST = struct.Struct("<QQ")  # id, lost (after the 8-byte header)

log = logging.getLogger(__name__)
_by_time = operator.itemgetter(0)
_libc = ctypes.CDLL(None, use_errno=True)
_libc.syscall.restype = ctypes.c_long


class PerfRingError(OSError):
    pass


def perf_event_open_nr(machine: str | None = None) -> int:
    machine = machine or platform.machine()
    try:
        return NR_PERF_EVENT_OPEN[machine]
    except KeyError:
        raise PerfRingError(0, f"perf_event_open: no syscall number known for machine {machine!r} "
                               f"(known: {', '.join(sorted(NR_PERF_EVENT_OPEN))})") from None


def bulk_reader_ordered(machine: str | None = None) -> bool:
    """Whether the bulk reader's plain accesses give acquire/release ordering on this machine."""
    return (machine or platform.machine()) in TSO_MACHINES


def open_bpf_output(cpu: int, watermark_bytes: int) -> int:
    """perf_event_open for BPF output on one CPU; wakes pollers once `watermark_bytes` are unread."""
    attr = ctypes.create_string_buffer(PERF_ATTR_SIZE)
    _ATTR.pack_into(attr, 0, PERF_TYPE_SOFTWARE, PERF_ATTR_SIZE, PERF_COUNT_SW_BPF_OUTPUT, 1, PERF_SAMPLE_RAW,
                    0, PERF_ATTR_FLAG_WATERMARK, watermark_bytes)
    fd = _libc.syscall(perf_event_open_nr(), attr, -1, cpu, -1, PERF_FLAG_FD_CLOEXEC)
    if fd < 0:
        err = ctypes.get_errno()
        raise PerfRingError(err, f"perf_event_open (BPF output, CPU {cpu}): {os.strerror(err)}")
    return fd


@dataclass
class MappedRing:
    cpu: int
    fd: int
    mm: mmap.mmap
    base: int
    size: int
    malformed: int = 0  # torn or unknown records met (already in the lost counts)

    def __post_init__(self) -> None:
        # Aligned 8-byte views: one load or store each (a struct unpack is a memcpy of any width).
        self.head = ctypes.c_uint64.from_buffer(self.mm, _HEAD_OFFSET)
        self.tail = ctypes.c_uint64.from_buffer(self.mm, _TAIL_OFFSET)

    def close(self) -> None:
        del self.head, self.tail  # exported buffers keep an mmap from closing
        self.mm.close()


@dataclass
class PerfRings:
    """One ring per online CPU of `page_cnt` pages (a power of two), put into a BPF_PERF_OUTPUT table."""

    page_cnt: int
    rings: list[MappedRing] = field(default_factory=list)

    def open(self, table, cpus: list[int]) -> None:
        page = mmap.PAGESIZE
        watermark = max(self.page_cnt * page // 4, 1)
        self._epoll = select.epoll()
        try:
            for cpu in cpus:
                fd = open_bpf_output(cpu, watermark)
                try:
                    mm = mmap.mmap(fd, (1 + self.page_cnt) * page, mmap.MAP_SHARED,
                                   mmap.PROT_READ | mmap.PROT_WRITE)
                except OSError:
                    os.close(fd)
                    raise
                _head, _tail, offset, size = _HEAD_TAIL.unpack_from(mm, _HEAD_OFFSET)
                self.rings.append(MappedRing(cpu, fd, mm, offset or page, size or self.page_cnt * page))
                fcntl.ioctl(fd, PERF_EVENT_IOC_ENABLE, 0)
                self._epoll.register(fd, select.EPOLLIN)
                table[table.Key(cpu)] = table.Leaf(fd)
        except BaseException:
            self.close()
            raise

    def wait(self, timeout_s: float) -> None:
        """Until a ring passes its watermark or `timeout_s` passes."""
        self._epoll.poll(timeout_s)

    def drain(self, out: list) -> int:
        """Appends (ts_ns, raw event bytes) of every unread sample to `out`; returns samples lost."""
        lost = 0
        for ring in self.rings:
            lost += drain_ring(ring, out)
        return lost

    def close(self) -> None:
        for ring in self.rings:
            ring.close()
            os.close(ring.fd)
        self.rings = []
        epoll = getattr(self, "_epoll", None)
        if epoll is not None:
            epoll.close()


def take_until(pending: list[tuple[int, bytes]], horizon_ns: int) -> tuple[list, list]:
    """(events at or before `horizon_ns` oldest first, the rest) of a reorder window's (ts_ns, raw)
    pairs. Each CPU's ring is already in time order, so the sort merges a few runs (timsort: ~linear);
    it is stable: events of equal time keep their arrival order."""
    pending.sort(key=_by_time)
    cut = bisect.bisect_right(pending, horizon_ns, key=_by_time)
    if cut == len(pending):
        return pending, []
    return pending[:cut], pending[cut:]


def reader_loop(stop: threading.Event, rings: PerfRings | BccRings, read: Callable[[], None],
                release: Callable[[int], None], reorder_window_s: float, sync_interval_s: float,
                sync: Callable[[], None], what: str) -> None:
    """A reader thread's life: wake on a full ring or half a reorder window, take the rings' events
    (`read`), hand on those older than the window (`release(horizon_ns)`), and every
    `sync_interval_s` follow the world (`sync`). Nothing one step raises stops the loop."""
    next_sync = time.monotonic() + sync_interval_s
    window_ns = int(reorder_window_s * 1e9)
    wait_s = max(reorder_window_s / 2, 0.001)
    while not stop.is_set():
        try:
            rings.wait(wait_s)
            read()
            release(time.monotonic_ns() - window_ns)
            if time.monotonic() >= next_sync:
                next_sync = time.monotonic() + sync_interval_s
                sync()
        except Exception:  # keep observing whatever one step did
            log.exception("%s loop", what)
            time.sleep(0.1)


def drain_ring(ring: MappedRing, out: list) -> int:
    """Appends (ts_ns, raw event bytes) of the ring's unread samples to `out`, hands the bytes back to
    the kernel; returns the samples lost: those the kernel reported, and the records it could not read."""
    head = ring.head.value  # acquire: the records below head are complete (module doc: ordering)
    tail = ring.tail.value
    if head == tail:
        return 0
    mm, size, base = ring.mm, ring.size, ring.base
    n = head - tail
    start = tail & (size - 1)
    if start + n <= size:
        chunk = mm[base + start:base + start + n]
    else:
        chunk = mm[base + start:base + size] + mm[base:base + n - (size - start)]
    lost = malformed = records = 0
    off = 0
    unpack = _SAMPLE.unpack_from
    append = out.append
    while off + 8 <= n:
        if off + 20 <= n:
            kind, _misc, rsize, raw_size, ts = unpack(chunk, off)
        else:
            (kind, _misc, rsize), raw_size, ts = _HEADER.unpack_from(chunk, off), 0, 0
        if rsize < 8 or rsize & 7 or off + rsize > n:
            # A torn header: nothing after it can be found. Count what the rest probably held.
            mean = off // records if records else _MEAN_GUESS
            malformed += max(1, (n - off) // mean)
            break
        if kind == PERF_RECORD_SAMPLE and rsize >= 20 and 12 + raw_size <= rsize:
            append((ts if raw_size >= 8 else 0, chunk[off + 12:off + 12 + raw_size]))
        elif kind == PERF_RECORD_LOST and rsize >= 24:
            lost += _LOST.unpack_from(chunk, off + 8)[1]
        else:
            malformed += 1  # an unknown type, or a sample/lost record too short for its fields
        off += rsize
        records += 1
    ring.tail.value = head  # release: after the copy above, the kernel may overwrite it
    ring.malformed += malformed
    return lost + malformed


class BccRings:
    """The same rings read by bcc's reader: libbcc's perf_reader orders its data_head/data_tail accesses
    in C, at the price of one Python callback per sample (~7 µs). For machines outside TSO_MACHINES."""

    def __init__(self, bpf, page_cnt: int) -> None:
        self._bpf = bpf
        self.page_cnt = page_cnt
        self._held: list[tuple[int, bytes]] = []
        self._lost = 0
        self._table = None

    def open(self, table, cpus: list[int]) -> None:
        """bcc opens one ring per online CPU itself (`cpus` is what PerfRings needs)."""
        table.open_perf_buffer(self._on_sample, page_cnt=self.page_cnt, lost_cb=self._on_lost)
        self._table = table

    def _on_sample(self, _cpu: int, data, size: int) -> None:
        raw = ctypes.string_at(data, size)
        self._held.append((int.from_bytes(raw[:8], "little") if size >= 8 else 0, raw))

    def _on_lost(self, count: int) -> None:
        self._lost += count

    def wait(self, timeout_s: float) -> None:
        self._bpf.perf_buffer_poll(max(1, int(timeout_s * 1000)))

    def drain(self, out: list) -> int:
        self._bpf.perf_buffer_poll(0)
        out.extend(self._held)
        self._held.clear()
        lost, self._lost = self._lost, 0
        return lost

    def close(self) -> None:
        if self._table is not None:
            for cpu in list(self._table._open_key_fds):  # bcc's PerfEventArray frees a ring on delete
                del self._table[cpu]
            self._table = None


def open_rings(bpf, table, cpus: list[int], page_cnt: int, reader: str = "auto") -> PerfRings | BccRings:
    """The rings of `table` opened for reading: in bulk where that is ordered ("auto") or asked ("bulk"),
    else with bcc's reader."""
    rings = PerfRings(page_cnt) if reader == "bulk" or (reader == "auto" and bulk_reader_ordered()) \
        else BccRings(bpf, page_cnt)
    rings.open(table, cpus)
    return rings
