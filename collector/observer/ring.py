"""A fixed-capacity ring of entries addressed by a monotonically increasing sequence number.

The writer never waits for readers: it overwrites the oldest slot. A reader remembers the sequence it
wants next; if the writer has lapped it, `read` tells how many entries it missed (the caller turns
that into a LostEvent). Readers copy references under the lock and do their work outside it.
"""

from __future__ import annotations

import threading
from typing import Generic, TypeVar

T = TypeVar("T")


class Ring(Generic[T]):
    def __init__(self, capacity: int) -> None:
        if capacity < 1:
            raise ValueError(f"ring capacity must be at least 1, got {capacity}")
        self.capacity = capacity
        self._slots: list[T | None] = [None] * capacity
        self._written = 0  # sequence number of the next entry
        self._cond = threading.Condition(threading.Lock())

    def append(self, entry: T) -> None:
        self.extend([entry])

    def extend(self, entries: list[T]) -> None:
        """Appends in order, waking the readers once."""
        with self._cond:
            slots, capacity = self._slots, self.capacity
            written = self._written + max(0, len(entries) - capacity)  # the sequence of the first one kept
            for entry in entries[-capacity:]:
                slots[written % capacity] = entry
                written += 1
            self._written += len(entries)
            self._cond.notify_all()

    @property
    def written(self) -> int:
        """Entries ever written (the sequence number the next entry will get)."""
        return self._written

    def __len__(self) -> int:
        return min(self._written, self.capacity)

    def read(self, start: int, stop: int | None = None) -> tuple[int, int, list[T]]:
        """Entries with sequence numbers in [start, stop) still in the ring (stop=None: up to now).
        Returns (first sequence returned, sequence after the last, entries); the first is greater
        than `start` when the writer overwrote entries the caller wanted."""
        with self._cond:
            end = self._written if stop is None else min(stop, self._written)
            first = max(start, end - self.capacity, 0)
            if first >= end:
                return first, max(first, end), []
            lo, hi = first % self.capacity, end % self.capacity
            if lo < hi:
                entries = self._slots[lo:hi]
            else:
                entries = self._slots[lo:] + self._slots[:hi]
            return first, end, entries  # type: ignore[return-value]

    def wait(self, after: int, timeout: float) -> int:
        """Blocks until an entry with sequence >= `after` exists or `timeout` passes; returns `written`."""
        with self._cond:
            if self._written <= after:
                self._cond.wait_for(lambda: self._written > after, timeout)
            return self._written

    def wake(self) -> None:
        """Wakes all waiting readers (e.g. when one of them was cancelled)."""
        with self._cond:
            self._cond.notify_all()
