"""Address allocation. Several labs share the host's routing table (tests run concurrently), so every
lab takes free addresses from the pod CIDR instead of fixed ones: free = not in another lab's state file
and not routed on the host already. The IPv6 address mirrors the IPv4 offset (10.244.0.7 <->
fd00:10:244::7), which keeps the two families easy to match by eye.
"""

from __future__ import annotations

import ipaddress
import json
import subprocess
from typing import Iterator

from common.errors import UserError
from lab.state import load_state, state_files, StateError


class AddressError(UserError):
    """No free address, or an explicitly requested one that is taken."""


def used_addresses(state_dir: str | None = None, exclude_lab: str = "") -> set[str]:
    """Addresses of every recorded lab (but `exclude_lab`) plus host routes with a single address."""
    used: set[str] = set()
    for path in state_files(state_dir):
        try:
            state = load_state(path)
        except StateError:
            continue
        if state.name != exclude_lab:
            used.update(a for h in state.hosts for a in (h.ipv4, h.ipv6) if a)
    for family in ("-4", "-6"):
        out = subprocess.run(["ip", "-j", family, "route", "show", "table", "all"],
                             capture_output=True, text=True, check=False).stdout
        for route in json.loads(out or "[]"):
            dst = route.get("dst", "")
            if dst and dst != "default":
                net = ipaddress.ip_network(dst, strict=False)
                if net.num_addresses == 1:
                    used.add(str(net.network_address))
    return used


class Pool:
    """Hands out (ipv4, ipv6) pairs from a pair of CIDRs, skipping `used`."""

    def __init__(self, cidr_v4: str, cidr_v6: str, used: set[str]) -> None:
        self.v4 = ipaddress.IPv4Network(cidr_v4)
        self.v6 = ipaddress.IPv6Network(cidr_v6)
        self.used = used
        self._offsets = self._free_offsets()

    def _free_offsets(self) -> Iterator[int]:
        # Offsets 0 and 1 stay free (network address, conventional gateway); so does the broadcast.
        for offset in range(2, self.v4.num_addresses - 1):
            yield offset

    def take(self) -> tuple[str, str]:
        for offset in self._offsets:
            v4, v6 = str(self.v4[offset]), str(self.v6[offset])
            if v4 not in self.used and v6 not in self.used:
                self.used.update((v4, v6))
                return v4, v6
        raise AddressError(f"no free address left in {self.v4} / {self.v6} "
                           f"(run `flowscope lab down --all` to remove old labs)")

    def claim(self, what: str, ipv4: str, ipv6: str) -> tuple[str, str]:
        """Use explicitly requested addresses; the missing family is allocated (mirrored if possible)."""
        for addr in (ipv4, ipv6):
            if addr and addr in self.used:
                raise AddressError(f"{what}: address {addr} is already used by another lab or route "
                                   f"(remove the fixed address or run `flowscope lab down`)")
        if not ipv4 or not ipv6:
            free_v4, free_v6 = self.take()
            ipv4, ipv6 = ipv4 or free_v4, ipv6 or free_v6
        self.used.update((ipv4, ipv6))
        return ipv4, ipv6

