"""Garbage collection of the in-kernel connection table, and the "end" event of each connection.

The kernel cannot know a connection's last packet (the final ACK comes after both FINs), so the
collector sweeps the table like Cilium's CT GC: a closed TCP connection idle for `close_grace_s`, or any
connection idle past its timeout, is removed and reported once with its final counters (the numbers a
capture of the same device counts)."""

from __future__ import annotations

import ctypes
import errno
import os
from dataclasses import dataclass
from typing import Callable

from collector.datapath import events as ev
from common.protocols import L4_NUMBERS

TCP, ICMP, ICMPV6 = L4_NUMBERS["TCP"], L4_NUMBERS["ICMPv4"], L4_NUMBERS["ICMPv6"]
TCPF_FIN = 0x01
TCPF_RST = 0x04


@dataclass(frozen=True)
class GcPolicy:
    close_grace_ns: int
    tcp_idle_ns: int
    other_idle_ns: int


def is_closed(proto: int, flags_fwd: int, flags_rev: int) -> bool:
    if proto != TCP:
        return False
    return bool((flags_fwd & flags_rev & TCPF_FIN) or ((flags_fwd | flags_rev) & TCPF_RST))


def expired(policy: GcPolicy, now_ns: int, proto: int, last_seen: int, flags_fwd: int, flags_rev: int) -> bool:
    idle = now_ns - last_seen
    if is_closed(proto, flags_fwd, flags_rev):
        return idle >= policy.close_grace_ns
    return idle >= (policy.tcp_idle_ns if proto == TCP else policy.other_idle_ns)


def end_event(key, value) -> ev.FlowEvent:
    """The connection as its originator sent it, with its final counters."""
    lo, hi = bytes(key.addr_lo), bytes(key.addr_hi)
    if value.orig_is_lo:
        saddr, daddr, sport, dport = lo, hi, key.port_lo, key.port_hi
    else:
        saddr, daddr, sport, dport = hi, lo, key.port_hi, key.port_lo
    if key.proto in (ICMP, ICMPV6):  # ICMP keys carry the echo id; the event carries type/code
        sport, dport = (8 if key.proto == ICMP else 128), 0
    return ev.FlowEvent(
        ts_ns=value.last_seen, first_seen_ns=value.first_seen,
        packets_fwd=value.packets[0], bytes_fwd=value.bytes[0],
        packets_rev=value.packets[1], bytes_rev=value.bytes[1],
        saddr=saddr, daddr=daddr, ifindex=key.ifindex, skb_len=0,
        policy_id=value.policy_id, remote_identity=value.remote_identity,
        sport=sport, dport=dport, payload_off=0, cap_len=0, family=key.family, proto=key.proto,
        kind=ev.EV_END, obs=value.obs, is_reply=0, tcp_flags=value.flags[0] | value.flags[1],
        verdict=value.verdict, policy_action=0, policy_match=value.policy_match, l7=ev.L7_OFF,
        flags_fwd=value.flags[0], flags_rev=value.flags[1], seg_len=0)


class BatchReader:
    """A bcc hash table read in batches into buffers allocated once. bcc's items_lookup_batch allocates
    (and zeroes) keys and values for max_entries on every call: ~20 MB a second for the connection
    table, a fixed cost of the collector even when nothing happens."""

    def __init__(self, table, chunk: int = 4096) -> None:
        self.table = table
        self.chunk = max(1, min(chunk, table.max_entries))
        self.keys = (table.Key * self.chunk)()
        self.values = (table.Leaf * self.chunk)()

    def items(self):
        """(key, value) of every entry; both are views into the buffers, valid until the next item batch."""
        from bcc.libbcc import lib  # Debian's python3-bpfcc

        token = ctypes.c_uint32(0)
        count = ctypes.c_uint32(0)
        first = True
        while True:
            count.value = self.chunk
            res = lib.bpf_lookup_batch(self.table.map_fd, None if first else ctypes.byref(token),
                                       ctypes.byref(token), self.keys, self.values, ctypes.byref(count))
            err = ctypes.get_errno()
            for i in range(count.value):
                yield self.keys[i], self.values[i]
            if res != 0:
                if err != errno.ENOENT:
                    raise OSError(err, f"BPF_MAP_LOOKUP_BATCH (map fd {self.table.map_fd}): {os.strerror(err)}")
                return
            first = False


def sweep(table, policy: GcPolicy, now_ns: int, reader: BatchReader | None = None,
          between: Callable[[], None] | None = None, every: int = 2048) -> list[ev.FlowEvent]:
    """Remove expired entries from the bcc table; returns their end events. `between`, if given, runs
    every `every` entries of the walk: the table of 10,000 connections/s holds tens of thousands, a
    walk of 0.15-0.9 s in Python on a loaded machine, long enough for the perf rings to fill unread."""
    keys, ended = [], []
    for i, (key, value) in enumerate((reader or BatchReader(table)).items()):
        if between is not None and i % every == every - 1:
            between()
        if expired(policy, now_ns, key.proto, value.last_seen, value.flags[0], value.flags[1]):
            keys.append(copy_key(key))
            ended.append(end_event(key, value))
    if keys:
        batch = (table.Key * len(keys))(*keys)
        try:
            table.items_delete_batch(batch)
        except Exception:  # an entry evicted meanwhile (LRU) fails the batch: fall back to one by one
            for key in keys:
                try:
                    del table[key]
                except KeyError:
                    pass
    return ended


def copy_key(key):
    """bcc reuses its ctypes buffers while iterating; keep our own copy."""
    clone = type(key)()
    ctypes.memmove(ctypes.addressof(clone), ctypes.addressof(key), ctypes.sizeof(key))
    return clone
