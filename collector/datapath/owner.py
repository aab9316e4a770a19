"""Who runs a pin dir: every running collector holds a shared flock on a file named after its pin dir,
and the kernel drops it however the process ends (SIGKILL and crashes included). Commands that would
tear down what a running collector uses (`flowscope collector --uninstall`, detaching after
`flowscope policy remove --all`) first check that no one holds it. Shared, so a rollout may overlap an
old and a new collector on one node."""

from __future__ import annotations

import fcntl
import os
import pathlib

LOCK_DIR = "/var/run/flowscope/collector"
LOCK_DIR_ENV = "FLOWSCOPE_COLLECTOR_LOCK_DIR"


def lock_path(pin_dir: str) -> pathlib.Path:
    base = os.environ.get(LOCK_DIR_ENV, LOCK_DIR)
    return pathlib.Path(base) / (pin_dir.strip("/").replace("/", "_") + ".lock")


class PinDirOwner:
    """Held by a running collector from start to exit."""

    def __init__(self, pin_dir: str) -> None:
        self.path = lock_path(pin_dir)
        self._fd: int | None = None

    def hold(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        fcntl.flock(self._fd, fcntl.LOCK_SH)

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


def collector_running(pin_dir: str) -> bool:
    """Whether some live process runs a collector on `pin_dir`."""
    path = lock_path(pin_dir)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)
    return False
