"""Protocol vocabulary, one table for every package: IP protocol numbers and the names Hubble's `flow.Layer4`
oneof uses for them, the names users type (`--protocol tcp`, Hubble's filter words), and the L7 record names
of `flow.Layer7`. Storage keeps numbers, flows keep names; both come from here."""

from __future__ import annotations

# flow.Layer4 oneof name -> IANA protocol number (what storage keeps and the kernel reports).
L4_NUMBERS = {"TCP": 6, "UDP": 17, "ICMPv4": 1, "ICMPv6": 58, "SCTP": 132}
L4_NAMES = {number: name for name, number in L4_NUMBERS.items()}
# Layer4 kinds that carry ports.
PORTED = ("TCP", "UDP", "SCTP")

# What users type (case-insensitive, as in Hubble) -> the Layer4 oneof names it stands for.
L4_PROTOCOLS = {
    "tcp": ("TCP",),
    "udp": ("UDP",),
    "sctp": ("SCTP",),
    "icmp": ("ICMPv4", "ICMPv6"),
    "icmpv4": ("ICMPv4",),
    "icmpv6": ("ICMPv6",),
}
# flow.Layer7 oneof names; the filter words are the same.
L7_RECORDS = ("dns", "http", "kafka")
PROTOCOLS = tuple(L4_PROTOCOLS) + L7_RECORDS


def l4_name(number: int) -> str:
    """The Layer4 name of an IP protocol number; the number itself for protocols without one; '' for 0."""
    if not number:
        return ""
    return L4_NAMES.get(number, str(number))
