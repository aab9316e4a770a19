"""Taking the datapath out of the kernel on purpose — the only ways it leaves while policies are loaded
(a stopped or killed collector keeps its programs attached, see bpf/README.md "Lifecycle").

`detach_left_over` removes the filters whose programs use a pin dir's maps (all its collectors are
gone); `uninstall` does that, then unpins the maps and removes the pin dir."""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from collector.datapath.attach import TcAttacher, programs_using_map
from collector.datapath.owner import collector_running
from common.errors import UserError

# Every program of bpf/flowscope.c uses conntrack: it names the programs of a pin dir.
MARKER_MAP = "conntrack"


@dataclass
class Teardown:
    detached: dict[str, int] = field(default_factory=dict)  # device -> filters removed
    unpinned: list[str] = field(default_factory=list)


def _refuse_if_running(pin_dir: str, what: str) -> None:
    if collector_running(pin_dir):
        raise UserError(f"a collector is running on pin dir {pin_dir}: stop it before {what}")


def detach_left_over(pin_dir: str) -> Teardown:
    """Detach every filter left by stopped collectors of `pin_dir` (refused while one runs)."""
    _refuse_if_running(pin_dir, "detaching its programs")
    programs = programs_using_map(os.path.join(pin_dir, MARKER_MAP))
    if not programs:
        return Teardown()
    attacher = TcAttacher({})
    try:
        return Teardown(detached=attacher.detach_everywhere(programs))
    finally:
        attacher.close()


def uninstall(pin_dir: str) -> Teardown:
    """Detach, then unpin every map of `pin_dir` and remove it; enforcement ends here."""
    done = detach_left_over(pin_dir)
    if os.path.isdir(pin_dir):
        for name in sorted(os.listdir(pin_dir)):
            os.unlink(os.path.join(pin_dir, name))
            done.unpinned.append(name)
        os.rmdir(pin_dir)
    return done
