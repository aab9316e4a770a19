"""A pcap file (as tcpdump writes it) turned into the calls the datapath makes to the L7 parsers: each
TCP segment's or UDP datagram's payload cut to a prefix, with its full length and time, and the close of
each connection. Tests and bench/l7.py feed these to collector.l7 and compare with what the client saw."""

from __future__ import annotations

import socket
import struct
from pathlib import Path
from typing import Iterator

PREFIX = 512
LINKTYPE_ETHERNET = 1
_MAGIC = {b"\xd4\xc3\xb2\xa1": ("<", 1000), b"\xa1\xb2\xc3\xd4": (">", 1000),  # µs timestamps
          b"\x4d\x3c\xb2\xa1": ("<", 1), b"\xa1\xb2\x3c\x4d": (">", 1)}  # ns timestamps


def frames(pcap: Path) -> Iterator[tuple[int, bytes]]:
    """(ts_ns, frame bytes) per record of a classic pcap file of Ethernet frames."""
    with open(pcap, "rb") as f:
        header = f.read(24)
        if len(header) < 24 or header[:4] not in _MAGIC:
            raise ValueError(f"{pcap}: not a pcap file (expected tcpdump -w output, magic {header[:4].hex()})")
        order, ns_per_tick = _MAGIC[header[:4]]
        (linktype,) = struct.unpack(order + "I", header[20:24])
        if linktype & 0xFFFF != LINKTYPE_ETHERNET:
            raise ValueError(f"{pcap}: link type {linktype}, expected Ethernet ({LINKTYPE_ETHERNET})")
        record = struct.Struct(order + "IIII")
        while len(head := f.read(16)) == 16:
            seconds, fraction, captured, _original = record.unpack(head)
            yield seconds * 1_000_000_000 + fraction * ns_per_tick, f.read(captured)


def _packets(pcap: Path):
    """(ts_ns, family, proto, src, dst, seq, flags, payload, payload length) per TCP/UDP packet. Lengths
    come from the IP/UDP headers, so a capture with a short snaplen still tells the full segment length
    (as the datapath does)."""
    for ts_ns, data in frames(pcap):
        ethertype = int.from_bytes(data[12:14], "big")
        ip = data[14:]
        if ethertype == 0x0800:
            ihl = (ip[0] & 0x0F) * 4
            family, proto, l4, l4_len = socket.AF_INET, ip[9], ip[ihl:], int.from_bytes(ip[2:4], "big") - ihl
            src_ip, dst_ip = socket.inet_ntop(family, ip[12:16]), socket.inet_ntop(family, ip[16:20])
        elif ethertype == 0x86DD:
            family, proto, l4, l4_len = socket.AF_INET6, ip[6], ip[40:], int.from_bytes(ip[4:6], "big")
            src_ip, dst_ip = socket.inet_ntop(family, ip[8:24]), socket.inet_ntop(family, ip[24:40])
        else:
            continue
        sport, dport = int.from_bytes(l4[0:2], "big"), int.from_bytes(l4[2:4], "big")
        if proto == socket.IPPROTO_TCP:
            seq = int.from_bytes(l4[4:8], "big")
            offset = (l4[12] >> 4) * 4
            yield (ts_ns, family, proto, (src_ip, sport), (dst_ip, dport), seq, l4[13], l4[offset:l4_len],
                   l4_len - offset)
        elif proto == socket.IPPROTO_UDP:
            udp_len = int.from_bytes(l4[4:6], "big")
            yield ts_ns, family, proto, (src_ip, sport), (dst_ip, dport), 0, 0, l4[8:udp_len], udp_len - 8


def segments(pcap: Path, server_ports: set[int], prefix: int = PREFIX):
    """The calls the datapath would make, in order: ("data", key, from_client, prefix bytes, length, ts)
    or ("close", key), key being (family, client ip, client port, server ip, server port, l4 protocol) as
    collector.l7.ConnKey orders them. TCP clients are known from the SYN; without one (and for UDP) the
    side using a server port is the server. Retransmitted segments (seq before the next expected) are
    dropped."""
    clients: dict[frozenset, tuple] = {}
    next_seq: dict[tuple, int] = {}  # (src, dst) -> next sequence number
    fins: dict[frozenset, int] = {}
    for ts_ns, family, proto, src, dst, seq, flags, data, length in _packets(pcap):
        pair = frozenset((src, dst))
        if flags & 0x02:  # SYN
            if not flags & 0x10:
                clients[pair] = src
            next_seq[(src, dst)] = seq + 1
            continue
        client = clients.get(pair) or (dst if src[1] in server_ports else src)
        server = dst if client == src else src
        key = (family, client[0], client[1], server[0], server[1], proto)
        if length > 0:
            if proto == socket.IPPROTO_TCP:
                expected = next_seq.get((src, dst))
                if expected is not None and ((seq - expected) & 0xFFFFFFFF) >= 0x80000000:
                    continue  # retransmission of bytes already delivered
                next_seq[(src, dst)] = (seq + length) & 0xFFFFFFFF
            yield "data", key, src == client, bytes(data[:prefix]), length, ts_ns
        if flags & 0x04:  # RST
            yield "close", key
        elif flags & 0x01:  # FIN: the connection is over when both sides sent one
            fins[pair] = fins.get(pair, 0) + 1
            if fins[pair] == 2:
                yield "close", key
