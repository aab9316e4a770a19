"""The writer's local spool: batches that ClickHouse did not take, on disk, replayed in order.

One file per batch, `<seq>.flows`: each flow as a 4-byte little-endian length and its protobuf bytes.
A file is written to a temporary name, fsynced and renamed, so a crash leaves whole batches only.
A lock file keeps two writers from sharing one spool directory.
"""

from __future__ import annotations

import fcntl
import os
import pathlib
import struct

from storage.errors import SpoolFullError, StorageError

_LEN = struct.Struct("<I")


def encode(raws: list[bytes]) -> bytes:
    return b"".join(_LEN.pack(len(r)) + r for r in raws)


def decode(data: bytes) -> list[bytes]:
    """The flows of one batch file; ValueError saying where its framing breaks (a file damaged on disk:
    the writer itself only renames whole files into place)."""
    raws, pos = [], 0
    while pos < len(data):
        if pos + _LEN.size > len(data):
            raise ValueError(f"{len(data) - pos} stray bytes at offset {pos}: expected a 4-byte length")
        (n,) = _LEN.unpack_from(data, pos)
        end = pos + _LEN.size + n
        if end > len(data):
            raise ValueError(f"the flow at offset {pos} is {n} bytes long, but only "
                             f"{len(data) - pos - _LEN.size} follow")
        raws.append(data[pos + _LEN.size:end])
        pos = end
    return raws


class Spool:
    def __init__(self, directory: str, max_bytes: int) -> None:
        self.dir = pathlib.Path(directory)
        self.max_bytes = max_bytes
        try:
            self.dir.mkdir(parents=True, exist_ok=True)
            (self.dir / "rejected").mkdir(exist_ok=True)
            self._lock = open(self.dir / ".lock", "w")
        except OSError as err:
            raise StorageError(f"spool directory {self.dir}: cannot create it: {err}") from None
        try:
            fcntl.flock(self._lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            raise StorageError(f"spool directory {self.dir} is in use by another writer") from None
        for leftover in self.dir.glob("*.tmp"):
            leftover.unlink()
        self.files = sorted(self.dir.glob("*.flows"))
        self.bytes = sum(f.stat().st_size for f in self.files)
        self._seq = int(self.files[-1].stem) + 1 if self.files else 0

    def __len__(self) -> int:
        return len(self.files)

    def append(self, raws: list[bytes]) -> None:
        """Stores one batch durably; SpoolFullError (nothing written) when the limit or the disk is full."""
        data = encode(raws)
        if self.bytes + len(data) > self.max_bytes:
            raise SpoolFullError(f"spool directory {self.dir} is full: {self.bytes} bytes spooled, limit "
                                 f"{self.max_bytes}, next batch {len(data)} bytes")
        path = self.dir / f"{self._seq:016d}.flows"
        tmp = path.with_suffix(".tmp")
        try:
            with open(tmp, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            os.rename(tmp, path)
        except OSError as err:
            try:
                tmp.unlink()
            except OSError:
                pass
            raise SpoolFullError(f"spool directory {self.dir}: cannot write a {len(data)}-byte batch "
                                 f"({err.strerror or err})") from None
        self._seq += 1
        self.bytes += len(data)
        self.files.append(path)

    def head(self) -> list[bytes] | None:
        """The oldest batch's flows; ValueError naming the file when it is damaged."""
        if not self.files:
            return None
        try:
            return decode(self.files[0].read_bytes())
        except ValueError as err:
            raise ValueError(f"{self.files[0]}: {err}") from None

    def pop(self, rejected: bool = False) -> None:
        """Removes the head batch (after it was stored, or into rejected/ when ClickHouse refuses it)."""
        path = self.files[0]
        size = path.stat().st_size
        if rejected:
            os.rename(path, self.dir / "rejected" / path.name)
        else:
            path.unlink()
        # Readers in other threads look at len() first: the count drops only after the bytes did.
        self.bytes -= size
        self.files.pop(0)

    def close(self) -> None:
        self._lock.close()
