"""The bulk perf-ring reader on a ring laid out as the kernel lays it out (an anonymous mapping stands in
for the perf mmap): samples in order across the wrap-around, LOST records counted, torn and unknown
records counted as lost, the tail handed back; the syscall number and ordering per platform."""

from __future__ import annotations

import mmap
import struct

import pytest

from collector.datapath.perfring import (PERF_RECORD_LOST, PERF_RECORD_SAMPLE, MappedRing, PerfRingError,
                                         bulk_reader_ordered, drain_ring, perf_event_open_nr)

PAGE = mmap.PAGESIZE
DATA = 2 * PAGE  # a two-page data area


def sample(ts: int, body: bytes) -> bytes:
    raw = struct.pack("<Q", ts) + body
    raw += b"\0" * (-(len(raw) + 4) % 8)  # the kernel pads u32 size + raw data to 8 bytes
    return struct.pack("<IHHI", PERF_RECORD_SAMPLE, 0, 12 + len(raw), len(raw)) + raw


def lost(count: int) -> bytes:
    return struct.pack("<IHHQQ", PERF_RECORD_LOST, 0, 24, 7, count)


class FakeRing:
    """Writes records at data_head like the kernel, wrapping at the end of the data area."""

    def __init__(self, start: int) -> None:
        self.mm = mmap.mmap(-1, PAGE + DATA)
        self.head = self.tail = start
        struct.pack_into("<QQQQ", self.mm, 1024, start, start, PAGE, DATA)

    def write(self, record: bytes) -> None:
        for i, byte in enumerate(record):
            self.mm[PAGE + (self.head + i) % DATA] = byte
        self.head += len(record)
        struct.pack_into("<Q", self.mm, 1024, self.head)

    def ring(self) -> MappedRing:
        return MappedRing(0, -1, self.mm, PAGE, DATA)


def test_samples_across_the_wrap_in_order_with_losses_and_tail_update():
    fake = FakeRing(start=DATA - 100)  # the first records straddle the end of the data area
    bodies = [bytes([i]) * (37 + 50 * i) for i in range(6)]
    for i, body in enumerate(bodies[:3]):
        fake.write(sample(1000 + i, body))
    fake.write(lost(5))
    for i, body in enumerate(bodies[3:], start=3):
        fake.write(sample(1000 + i, body))
    out: list = []
    assert drain_ring(fake.ring(), out) == 5
    assert [ts for ts, _ in out] == [1000 + i for i in range(6)]
    assert all(raw[8:8 + len(body)] == body for (_, raw), body in zip(out, bodies))
    assert struct.unpack_from("<Q", fake.mm, 1032)[0] == fake.head  # everything handed back to the kernel
    assert drain_ring(fake.ring(), out) == 0 and len(out) == 6  # nothing new: nothing read


def test_a_torn_header_counts_the_rest_of_the_ring_as_lost():
    fake = FakeRing(start=0)
    fake.write(sample(1, b"x" * 100))   # a 120-byte record
    fake.write(struct.pack("<IHH", PERF_RECORD_SAMPLE, 0, 4) + b"\0" * 252)  # size below a header: garbage
    out: list = []
    ring = fake.ring()
    assert drain_ring(ring, out) == 2, "256 unreadable bytes at 120 bytes a record: 2 events lost"
    assert [ts for ts, _ in out] == [1] and ring.malformed == 2
    assert struct.unpack_from("<Q", fake.mm, 1032)[0] == fake.head


def test_unknown_and_short_records_are_counted_and_walked_past():
    fake = FakeRing(start=0)
    fake.write(struct.pack("<IHH", 5, 0, 16) + b"\0" * 8)                  # PERF_RECORD_THROTTLE-like: unknown
    fake.write(struct.pack("<IHHI", PERF_RECORD_SAMPLE, 0, 24, 64) + b"\0" * 12)  # raw size past the record
    fake.write(sample(2, b"y"))
    fake.write(struct.pack("<IHH", PERF_RECORD_SAMPLE, 0, 12) + b"\0" * 3)  # size not a multiple of 8: torn
    out: list = []
    assert drain_ring(fake.ring(), out) == 3
    assert [ts for ts, _ in out] == [2]


def test_a_record_past_the_published_head_is_not_read():
    fake = FakeRing(start=0)
    fake.write(sample(3, b"z" * 30))
    fake.write(struct.pack("<IHH", PERF_RECORD_SAMPLE, 0, 200))  # claims more than the kernel published
    out: list = []
    assert drain_ring(fake.ring(), out) == 1 and [ts for ts, _ in out] == [3]


def test_syscall_number_and_ordering_come_from_the_platform():
    assert perf_event_open_nr("x86_64") == 298 and perf_event_open_nr("aarch64") == 241
    assert perf_event_open_nr("armv7l") == 364 and perf_event_open_nr("ppc64le") == 319
    with pytest.raises(PerfRingError, match="no syscall number known for machine 'vax'"):
        perf_event_open_nr("vax")
    assert bulk_reader_ordered("x86_64") and not bulk_reader_ordered("aarch64")
