"""Where export lines go: a file rotated at a size limit (like Hubble's exporter, which uses lumberjack),
or standard output.

Rotation renames the file to `<stem>-<UTC time>.<ext>` (lumberjack's backup names, e.g.
`events-2026-12-02T17-35-01.123.log`), gzips that backup when asked (`....log.gz`) and keeps the newest
`max_backups` backups, so log shippers that follow `events.log` (Fluent Bit, Vector, promtail) see a
rename and a new file, as with any rotated log.
"""

from __future__ import annotations

import gzip
import os
import pathlib
import shutil
import sys
import time
from typing import Callable, Protocol

STAMP = "%Y-%m-%dT%H-%M-%S"  # lumberjack's "2006-01-02T15-04-05.000", milliseconds added below


class Sink(Protocol):
    def write(self, lines: list[bytes]) -> None: ...
    def close(self) -> None: ...


class StdoutSink:
    """Lines to standard output (Hubble's `filePath: stdout`): the container runtime keeps the log."""

    def __init__(self, stream=None) -> None:
        self._stream = stream if stream is not None else sys.stdout.buffer

    def write(self, lines: list[bytes]) -> None:
        self._stream.write(b"".join(lines))
        self._stream.flush()

    def close(self) -> None:
        self._stream.flush()


class RotatingFile:
    """Appends lines to `path`; before a line would take the file past `max_bytes`, the file becomes a
    backup and a new one starts. A line never spans two files (a single line longer than the limit
    gets a file of its own). Not thread-safe: one exporter thread owns it."""

    def __init__(self, path: str | os.PathLike, max_bytes: int, max_backups: int, compress: bool = False,
                 clock: Callable[[], float] = time.time) -> None:
        self.path = pathlib.Path(path)
        self.max_bytes = max_bytes
        self.max_backups = max_backups
        self.compress = compress
        self._clock = clock
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._file = open(self.path, "ab")
        self._size = self._file.tell()
        self.rotations = 0

    def write(self, lines: list[bytes]) -> None:
        chunk: list[bytes] = []
        for line in lines:
            if self._size and self._size + len(line) > self.max_bytes:
                self._file.write(b"".join(chunk))
                chunk = []
                self._rotate()
            chunk.append(line)
            self._size += len(line)
        self._file.write(b"".join(chunk))
        self._file.flush()

    def close(self) -> None:
        self._file.close()

    def backups(self) -> list[pathlib.Path]:
        """This file's backups, newest first (their names sort by time)."""
        stem, ext = self.path.stem, self.path.suffix
        found = [p for p in self.path.parent.glob(f"{stem}-*{ext}*")
                 if p.name.endswith((ext, ext + ".gz")) and p != self.path]
        return sorted(found, key=lambda p: p.name, reverse=True)

    def _rotate(self) -> None:
        self._file.close()
        backup = self._backup_name()
        os.replace(self.path, backup)
        self._file = open(self.path, "ab")
        self._size = 0
        self.rotations += 1
        if self.compress:
            _gzip(backup)
        for old in self.backups()[self.max_backups:]:
            old.unlink(missing_ok=True)

    def _backup_name(self) -> pathlib.Path:
        now = self._clock()
        while True:
            millis = int(now * 1000) % 1000
            name = f"{self.path.stem}-{time.strftime(STAMP, time.gmtime(now))}.{millis:03d}{self.path.suffix}"
            candidate = self.path.with_name(name)
            if not candidate.exists() and not candidate.with_name(name + ".gz").exists():
                return candidate
            now += 0.001  # two rotations within one millisecond: the next name, still in time order


def _gzip(path: pathlib.Path) -> None:
    """path -> path.gz (written aside and renamed, so a reader never sees half an archive)."""
    target = path.with_name(path.name + ".gz")
    partial = path.with_name(path.name + ".gz.tmp")
    with open(path, "rb") as src, gzip.open(partial, "wb") as dst:
        shutil.copyfileobj(src, dst)
    os.replace(partial, target)
    path.unlink()
