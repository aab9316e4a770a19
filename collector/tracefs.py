"""Tracepoint records as the running kernel lays them out: field offsets from tracefs format files.

A tracepoint's record gained and moved fields between kernel versions; its format file
(events/<system>/<event>/format) is the kernel's own description, so BPF programs take the offsets
from it as -D constants instead of assuming a layout."""

from __future__ import annotations

import os
import re
from typing import Iterable

from common.errors import UserError

TRACEFS_DIRS = ("/sys/kernel/tracing", "/sys/kernel/debug/tracing")
_FIELD = re.compile(r"field:[^;]*?(\w+)(?:\[\d*\])?;\s*offset:(\d+);")


class TracepointError(UserError):
    """A tracepoint missing, or without a field flowscope reads."""


def record_offsets(system: str, event: str, wanted: Iterable[str], hint: str = "",
                   tracefs_dirs: Iterable[str] = TRACEFS_DIRS) -> dict[str, int]:
    """Offsets of the `wanted` fields of the <system>:<event> record. `hint` says what kernel has them."""
    wanted = tuple(wanted)
    dirs = tuple(tracefs_dirs)
    for directory in dirs:
        path = os.path.join(directory, "events", system, event, "format")
        try:
            with open(path) as f:
                found = dict(_FIELD.findall(f.read()))
        except PermissionError:
            raise TracepointError(f"{path}: permission denied; expected root (tracefs is readable by root only)")
        except OSError:
            continue
        missing = [w for w in wanted if w not in found]
        if missing:
            raise TracepointError(f"{path}: tracepoint has no field(s) {', '.join(missing)}"
                                  f"{'; expected ' + hint if hint else ''}")
        return {w: int(found[w]) for w in wanted}
    raise TracepointError(f"tracepoint {system}:{event} not found under {' or '.join(dirs)}: mount tracefs "
                          f"(mount -t tracefs tracefs /sys/kernel/tracing)"
                          f"{' and use ' + hint if hint else ''}")
