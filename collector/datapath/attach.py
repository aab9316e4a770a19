"""TC clsact attachment of the datapath programs to pod devices, by ifindex.

Filters use a fixed priority and handle, so attaching is `tc filter replace`: a restarted collector swaps
its new program in atomically and traffic is never without a filter (the enforcement continuity issue 8
needs). A device that disappears (pod deleted) is not an error: its filters went with it."""

from __future__ import annotations

import errno
import logging

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


class TcAttacher:
    def __init__(self, program_fds: dict[str, int]) -> None:
        self._fds = program_fds
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

    def detach(self, ifindex: int) -> None:
        """Remove our filters (never the qdisc: others may have filters there). Quiet if the device is gone."""
        for parent in (PARENT_INGRESS, PARENT_EGRESS):
            try:
                self._ipr.tc("del-filter", "bpf", ifindex, FILTER_HANDLE, parent=parent, prio=FILTER_PRIO)
            except NetlinkError as err:
                if err.code not in _GONE:
                    log.warning("detaching from ifindex %d: %s", ifindex, err)

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
