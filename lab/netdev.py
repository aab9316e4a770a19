"""Network plumbing, as a point-to-point CNI (Calico, the `ptp` plugin) does it:

  pod netns:  eth0 with <ipv4>/32 and <ipv6>/128; default via 169.254.1.1 (onlink) and via fe80::1
  host:       the veth peer (the pod's device) answers ARP for 169.254.1.1 by proxy_arp and owns fe80::1;
              routes <ipv4>/32 and <ipv6>/128 via that device; forwarding on.

Batched through `ip -batch` (one process per step for all pods, one per pod namespace), so a lab of a
few pods takes tens of milliseconds.
"""

from __future__ import annotations

import json
import pathlib
import subprocess
from typing import Iterable

from common.errors import UserError
from lab.state import HostState

GATEWAY_V4 = "169.254.1.1"
GATEWAY_V6 = "fe80::1"


class NetdevError(UserError):
    """An `ip` command failed while building the lab."""


def ip_batch(commands: Iterable[str], netns: str = "", force: bool = False) -> str:
    """Run `ip -batch -` (in `netns` if given); with force, keep going past errors and ignore them."""
    lines = "\n".join(commands) + "\n"
    argv = ["ip"] + (["-n", netns] if netns else []) + (["-force"] if force else []) + ["-batch", "-"]
    proc = subprocess.run(argv, input=lines, capture_output=True, text=True, check=False)
    if proc.returncode != 0 and not force:
        raise NetdevError(f"ip {'-n ' + netns + ' ' if netns else ''}failed: "
                          f"{proc.stderr.strip().splitlines()[0] if proc.stderr.strip() else proc.returncode}")
    return proc.stderr


def write_sysctl(key: str, value: str) -> None:
    path = pathlib.Path("/proc/sys") / key.replace(".", "/")
    path.write_text(value)


def enable_forwarding() -> None:
    write_sysctl("net.ipv4.ip_forward", "1")
    write_sysctl("net.ipv6.conf.all.forwarding", "1")


def create_hosts(hosts: list[HostState]) -> None:
    """Namespaces, veth pairs, addresses and routes for every host (pod or world)."""
    if not hosts:
        return
    enable_forwarding()
    host_side = []
    for h in hosts:
        host_side += [f"netns add {h.netns}",
                      f"link add {h.device} type veth peer name eth0 netns {h.netns}",
                      f"link set {h.device} up",
                      f"address add {GATEWAY_V6}/64 dev {h.device} nodad"]
    ip_batch(host_side)
    for h in hosts:
        # proxy_delay 0: the kernel otherwise delays proxy ARP answers up to 0.8 s (Calico sets it too).
        write_sysctl(f"net/ipv4/conf/{h.device}/proxy_arp", "1")
        write_sysctl(f"net/ipv4/neigh/{h.device}/proxy_delay", "0")
        ip_batch([
            "link set lo up",
            f"address add {h.ipv4}/32 dev eth0",
            f"address add {h.ipv6}/128 dev eth0 nodad",
            "link set eth0 up",
            f"route add default via {GATEWAY_V4} dev eth0 onlink",
            f"route add default via {GATEWAY_V6} dev eth0",
        ], netns=h.netns)
    routes = []
    for h in hosts:
        routes += [f"route add {h.ipv4}/32 dev {h.device} scope link",
                   f"route add {h.ipv6}/128 dev {h.device}"]
    ip_batch(routes)


def delete_hosts(hosts: list[HostState]) -> None:
    """Remove namespaces and devices; missing ones are fine (idempotent, works after a crash).
    Deleting the veth removes its peer and the routes through it."""
    commands = [f"link del {h.device}" for h in hosts] + [f"netns del {h.netns}" for h in hosts]
    if commands:
        ip_batch(commands, force=True)


def ifindexes() -> dict[str, int]:
    out = subprocess.run(["ip", "-j", "link", "show"], capture_output=True, text=True, check=True).stdout
    return {link["ifname"]: link["ifindex"] for link in json.loads(out)}


def existing_netns() -> set[str]:
    out = subprocess.run(["ip", "-j", "netns", "list"], capture_output=True, text=True, check=False).stdout
    return {n["name"] for n in json.loads(out or "[]")}
