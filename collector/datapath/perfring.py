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
"""

from __future__ import annotations

import bisect
import ctypes
import fcntl
import logging
import mmap
import operator
import os
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
NR_PERF_EVENT_OPEN = 298  # x86_64
PERF_RECORD_LOST = 2
PERF_RECORD_SAMPLE = 9

_ATTR = struct.Struct("<IIQQQQQI")  # type, size, config, sample_period, sample_type, read_format, flags, wakeup_*
_HEAD_TAIL = struct.Struct("<QQQQ")  # data_head, data_tail, data_offset, data_size
_HEAD_OFFSET = 1024
_TAIL = struct.Struct("<Q")
_TAIL_OFFSET = 1032
# A sample's record header, raw size and the event's first field (ts_ns) in one unpack.
_SAMPLE = struct.Struct("<IHHIQ")
_LOST = struct.Struct("<QQ")  # id, lost (after the 8-byte header)

log = logging.getLogger(__name__)
_by_time = operator.itemgetter(0)
_libc = ctypes.CDLL(None, use_errno=True)
_libc.syscall.restype = ctypes.c_long


class PerfRingError(OSError):
    pass


def open_bpf_output(cpu: int, watermark_bytes: int) -> int:
    """perf_event_open for BPF output on one CPU; wakes pollers once `watermark_bytes` are unread."""
    attr = ctypes.create_string_buffer(PERF_ATTR_SIZE)
    _ATTR.pack_into(attr, 0, PERF_TYPE_SOFTWARE, PERF_ATTR_SIZE, PERF_COUNT_SW_BPF_OUTPUT, 1, PERF_SAMPLE_RAW,
                    0, PERF_ATTR_FLAG_WATERMARK, watermark_bytes)
    fd = _libc.syscall(NR_PERF_EVENT_OPEN, attr, -1, cpu, -1, PERF_FLAG_FD_CLOEXEC)
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
            ring.mm.close()
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


def reader_loop(stop: threading.Event, rings: PerfRings, read: Callable[[], None],
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
    the kernel; returns the samples the kernel reported lost."""
    mm = ring.mm
    head, tail = _HEAD_TAIL.unpack_from(mm, _HEAD_OFFSET)[:2]
    if head == tail:
        return 0
    size, base = ring.size, ring.base
    n = head - tail
    start = tail & (size - 1)
    if start + n <= size:
        chunk = mm[base + start:base + start + n]
    else:
        chunk = mm[base + start:base + size] + mm[base:base + n - (size - start)]
    lost = 0
    off = 0
    unpack = _SAMPLE.unpack_from
    append = out.append
    while off + 20 <= n:  # the smallest record we read (a LOST record is 24 bytes)
        kind, _misc, rsize, raw_size, ts = unpack(chunk, off)
        if rsize < 8:
            break  # a torn header cannot be walked past; the tail still moves to head below
        if kind == PERF_RECORD_SAMPLE and rsize >= 12:
            append((ts if raw_size >= 8 else 0, chunk[off + 12:off + 12 + raw_size]))
        elif kind == PERF_RECORD_LOST and rsize >= 24:
            lost += _LOST.unpack_from(chunk, off + 8)[1]
        off += rsize
    _TAIL.pack_into(mm, _TAIL_OFFSET, head)
    return lost
