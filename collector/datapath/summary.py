"""Hubble-style one-line summaries and TCP flag messages, precomputed per flags byte."""

from __future__ import annotations

from proto.flow import flow_pb2

# Cilium's order when it prints flags (pkg/hubble/parser/threefour).
_FLAG_ORDER = (("SYN", 0x02), ("ACK", 0x10), ("RST", 0x04), ("FIN", 0x01), ("PSH", 0x08),
               ("URG", 0x20), ("ECE", 0x40), ("CWR", 0x80))

_ICMP4 = {0: "EchoReply", 3: "DestinationUnreachable", 4: "SourceQuench", 5: "Redirect", 8: "EchoRequest",
          11: "TimeExceeded", 12: "ParameterProblem", 13: "TimestampRequest", 14: "TimestampReply"}
_ICMP6 = {1: "DestinationUnreachable", 2: "PacketTooBig", 3: "TimeExceeded", 4: "ParameterProblem",
          128: "EchoRequest", 129: "EchoReply", 133: "RouterSolicitation", 134: "RouterAdvertisement",
          135: "NeighborSolicitation", 136: "NeighborAdvertisement"}


def flag_names(flags: int) -> list[str]:
    return [name for name, bit in _FLAG_ORDER if flags & bit]


def _tcp_flags_message(flags: int) -> flow_pb2.TCPFlags:
    return flow_pb2.TCPFlags(FIN=bool(flags & 0x01), SYN=bool(flags & 0x02), RST=bool(flags & 0x04),
                             PSH=bool(flags & 0x08), ACK=bool(flags & 0x10), URG=bool(flags & 0x20),
                             ECE=bool(flags & 0x40), CWR=bool(flags & 0x80))


TCP_FLAGS = tuple(_tcp_flags_message(f) for f in range(256))
TCP_SUMMARY = tuple("TCP Flags: " + ", ".join(flag_names(f)) if f else "TCP" for f in range(256))


def icmp_summary(v6: bool, icmp_type: int) -> str:
    names = _ICMP6 if v6 else _ICMP4
    return f"ICMPv{6 if v6 else 4} {names.get(icmp_type, f'Type{icmp_type}')}"
