"""TC clsact attachment of the datapath programs to pod devices, by ifindex.

Filters use a fixed priority and handle, so attaching is `tc filter replace`: a restarted collector swaps
its new program in atomically and traffic is never without a filter (the enforcement continuity issue 8
needs). Detaching removes a filter only while it still runs one of this process's programs: a collector
that stops after its successor attached (a rollout with overlap) leaves the successor's filters alone.
A device that disappears (pod deleted) is not an error: its filters went with it."""

from __future__ import annotations

import errno
import json
import logging
import socket
import subprocess

from pyroute2 import IPRoute
from pyroute2.netlink.exceptions import NetlinkError

log = logging.getLogger(__name__)

PARENT_INGRESS = 0xFFFFFFF2  # clsact ingress hook: packets the pod sends (host side of its veth)
PARENT_EGRESS = 0xFFFFFFF3  # clsact egress hook: packets delivered to the pod
FILTER_PRIO = 0xC100  # fixed prio + handle: what makes `replace` hit our filter and nobody else's
FILTER_HANDLE = 0x1
_GONE = (errno.ENODEV, errno.ENOENT, errno.EINVAL)


class DeviceGone(Exception):
    """The device was deleted while we worked on it."""


def program_id(fd: int) -> int:
    """The kernel id of the BPF program behind `fd` (from /proc: no bpf() call needed)."""
    with open(f"/proc/self/fdinfo/{fd}") as info:
        for line in info:
            if line.startswith("prog_id:"):
                return int(line.split()[1])
    raise ValueError(f"fd {fd} is not a BPF program")


def programs_using_map(pin_path: str) -> set[int]:
    """Ids of the loaded programs that use the map pinned at `pin_path` (bpftool: libbpf has no
    "programs of a map" call); empty when nothing is pinned there."""
    try:
        found = subprocess.run(["bpftool", "-j", "map", "show", "pinned", pin_path], capture_output=True,
                               text=True, timeout=10)
        if found.returncode != 0:
            return set()
        map_id = json.loads(found.stdout)["id"]
        progs = subprocess.run(["bpftool", "-j", "prog", "show"], capture_output=True, text=True, timeout=10)
        return {p["id"] for p in json.loads(progs.stdout or "[]") if map_id in p.get("map_ids", [])}
    except FileNotFoundError as err:
        raise RuntimeError("bpftool not found: install Debian's bpftool (deploy/local/setup.sh does)") from err


class TcAttacher:
    """Attaches the programs given by fd; `TcAttacher({})` only inspects and detaches (uninstall)."""

    def __init__(self, program_fds: dict[str, int]) -> None:
        self._fds = program_fds
        self._own = {program_id(fd) for fd in program_fds.values()}
        self._ipr = IPRoute()

    def close(self) -> None:
        self._ipr.close()

    def attach(self, ifindex: int) -> None:
        """Add clsact if missing, then replace our two filters. Raises DeviceGone."""
        try:
            self._ipr.tc("add", "clsact", ifindex)
        except NetlinkError as err:
            if err.code != errno.EEXIST:
                self._gone_or_raise(err, ifindex)
        for parent, program in ((PARENT_INGRESS, "from_pod"), (PARENT_EGRESS, "to_pod")):
            try:
                self._ipr.tc("replace-filter", "bpf", ifindex, FILTER_HANDLE, parent=parent, prio=FILTER_PRIO,
                             fd=self._fds[program], name=f"flowscope_{program}", direct_action=True)
            except NetlinkError as err:
                self._gone_or_raise(err, ifindex)

    def detach(self, ifindex: int, programs: set[int] | None = None) -> int:
        """Remove our filters that run one of `programs` (default: this process's own), never the qdisc
        (others may have filters there). Quiet if the device is gone; returns how many were removed."""
        programs = self._own if programs is None else programs
        removed = 0
        for parent, prog_id in self._filter_programs(ifindex).items():
            if prog_id not in programs:
                continue
            try:
                self._ipr.tc("del-filter", "bpf", ifindex, FILTER_HANDLE, parent=parent, prio=FILTER_PRIO)
                removed += 1
            except NetlinkError as err:
                if err.code not in _GONE:
                    log.warning("detaching from ifindex %d: %s", ifindex, err)
        return removed

    def detach_everywhere(self, programs: set[int]) -> dict[str, int]:
        """Remove the filters running `programs` from every device of this network namespace (what a
        collector that is gone left attached); returns device -> filters removed."""
        removed = {}
        for ifindex, name in self.link_names().items():
            if count := self.detach(ifindex, programs):
                removed[name] = count
        return removed

    @staticmethod
    def _filter_programs(ifindex: int) -> dict[int, int]:
        """parent hook -> program id of the filter at our prio (hooks without one are left out). From
        iproute2's JSON: pyroute2 does not decode TCA_BPF_ID."""
        found = {}
        try:
            device = socket.if_indextoname(ifindex)
        except OSError:
            return found
        for parent, hook in ((PARENT_INGRESS, "ingress"), (PARENT_EGRESS, "egress")):
            out = subprocess.run(["tc", "-j", "filter", "show", "dev", device, hook], capture_output=True,
                                 text=True, timeout=10)
            for entry in json.loads(out.stdout or "[]") if out.returncode == 0 else ():
                prog = entry.get("options", {}).get("prog", {})
                if entry.get("pref") == FILTER_PRIO and "id" in prog:
                    found[parent] = prog["id"]
        return found

    def attached_program_names(self, ifindex: int) -> list[str]:
        """Names of the bpf filters on the device's clsact hooks (for tests and status)."""
        names = []
        for parent in (PARENT_INGRESS, PARENT_EGRESS):
            try:
                filters = self._ipr.get_filters(index=ifindex, parent=parent)
            except NetlinkError:
                continue
            for msg in filters:
                options = msg.get_attr("TCA_OPTIONS")
                name = options.get_attr("TCA_BPF_NAME") if options is not None else None
                if name:
                    names.append(name)
        return names

    def link_names(self) -> dict[int, str]:
        return {link["index"]: link.get_attr("IFLA_IFNAME") for link in self._ipr.get_links()}

    def host_addresses(self) -> list[str]:
        return [addr.get_attr("IFA_ADDRESS") for addr in self._ipr.get_addr()]

    @staticmethod
    def _gone_or_raise(err: NetlinkError, ifindex: int) -> None:
        if err.code in _GONE:
            raise DeviceGone(ifindex) from err
        raise err
