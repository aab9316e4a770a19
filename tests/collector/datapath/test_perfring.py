"""The bulk perf-ring reader on a ring laid out as the kernel lays it out (an anonymous mapping stands in
for the perf mmap): samples in order across the wrap-around, LOST records counted, the tail handed back."""

from __future__ import annotations

import mmap
import struct

from collector.datapath.perfring import PERF_RECORD_LOST, PERF_RECORD_SAMPLE, MappedRing, drain_ring

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


def test_a_torn_or_tiny_record_stops_the_walk_without_raising():
    fake = FakeRing(start=0)
    fake.write(sample(1, b"x" * 100))
    fake.write(struct.pack("<IHH", PERF_RECORD_SAMPLE, 0, 4) + b"\0" * 20)  # size below a header: garbage
    out: list = []
    assert drain_ring(fake.ring(), out) == 0
    assert [ts for ts, _ in out] == [1]
    assert struct.unpack_from("<Q", fake.mm, 1032)[0] == fake.head
