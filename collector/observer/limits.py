"""StreamLimits: how many flow streams one server serves at once.

A follow stream lives as long as its client wants. Unbounded, they take every worker of the collector's
thread pool (the 65th client, and the kubelet's health probe, then hang) or the relay's memory. Past the
limit a new stream is refused at once with RESOURCE_EXHAUSTED naming the limit, so a client knows to
retry elsewhere or later. Follow streams and history queries (which end by themselves, unless their
client stops reading) have limits of their own: a server full of followers still answers
`observe --last 1`, and health and ServerStatus never wait for a stream.
"""

from __future__ import annotations

import threading

DEFAULT_MAX_STREAMS = 64
DEFAULT_HISTORY_STREAMS = 16


class StreamLimit:
    """A counter of open streams; thread-safe, usable from asyncio code too (it never blocks)."""

    def __init__(self, limit: int, kind: str, option: str | None = None) -> None:
        if limit <= 0:
            raise ValueError(f"{option or kind} {limit}: expected a positive number of streams")
        self.limit = limit
        self.kind = kind
        self.option = option
        self.open = 0
        self.refused = 0
        self._lock = threading.Lock()

    def try_acquire(self) -> bool:
        with self._lock:
            if self.open >= self.limit:
                self.refused += 1
                return False
            self.open += 1
            return True

    def release(self) -> None:
        with self._lock:
            self.open -= 1

    def message(self) -> str:
        setting = f" (set by {self.option})" if self.option else ""
        return (f"too many concurrent {self.kind} streams: this server serves at most {self.limit}"
                f"{setting}; retry later or elsewhere")


class StreamLimits:
    """The limits of one server: follow streams (configurable) and history queries."""

    def __init__(self, follow: int = DEFAULT_MAX_STREAMS, history: int = DEFAULT_HISTORY_STREAMS) -> None:
        self.follow = StreamLimit(follow, "follow", "--max-flow-streams")
        self.history = StreamLimit(history, "history")

    def of(self, follow: bool) -> StreamLimit:
        return self.follow if follow else self.history

    @property
    def total(self) -> int:
        return self.follow.limit + self.history.limit
