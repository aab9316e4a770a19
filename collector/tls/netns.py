"""Which network namespace is a local pod's: the namespace's id as the host's netlink sees it.

A pod's host-side device (a veth) names its peer's namespace by an nsid (IFLA_LINK_NETNSID); a
process's namespace (/proc/PID/ns/net) gets its nsid from RTM_GETNSID. Equal nsids: the process runs
in that pod. Addresses cannot tell: two clusters (or labs) on one machine may reuse pod addresses."""

from __future__ import annotations

import os
import socket
import struct

RTM_GETNSID = 90
NLM_F_REQUEST = 1
NETNSA_NSID, NETNSA_FD = 1, 3
NLMSG_ERROR = 2
_HEADER = struct.Struct("=IHHII")  # nlmsghdr: len, type, flags, seq, pid


def nsid_of(netns_path: str) -> int | None:
    """The host's nsid for the namespace at `netns_path` (/proc/PID/ns/net); None if it has none (the
    host's own namespace, or one no device of the host links to)."""
    try:
        fd = os.open(netns_path, os.O_RDONLY)
    except OSError:
        return None
    try:
        with socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, socket.NETLINK_ROUTE) as sock:
            body = struct.pack("=B3x", socket.AF_UNSPEC) + struct.pack("=HHI", 8, NETNSA_FD, fd)
            sock.send(_HEADER.pack(_HEADER.size + len(body), RTM_GETNSID, NLM_F_REQUEST, 1, 0) + body)
            reply = sock.recv(4096)
    except OSError:
        return None
    finally:
        os.close(fd)
    if len(reply) < _HEADER.size + 4 or _HEADER.unpack_from(reply)[1] == NLMSG_ERROR:
        return None
    pos = _HEADER.size + 4
    while pos + 4 <= len(reply):
        length, kind = struct.unpack_from("=HH", reply, pos)
        if length < 4:
            break
        if kind == NETNSA_NSID and length >= 8:
            nsid = struct.unpack_from("=i", reply, pos + 4)[0]
            return nsid if nsid >= 0 else None
        pos += (length + 3) & ~3
    return None


def device_nsids() -> dict[int, int]:
    """ifindex -> nsid of the namespace its peer lives in, for every host device that has one."""
    from pyroute2 import IPRoute

    with IPRoute() as ip:
        return {link["index"]: nsid for link in ip.get_links()
                if (nsid := link.get_attr("IFLA_LINK_NETNSID")) is not None}
