"""Kernel drops as flows: packets the kernel frees with a drop reason (tracepoint skb:kfree_skb) become
flow.Flow records with verdict DROPPED, the kernel's reason name, a Hubble drop reason where one
matches, and both ends' endpoints.

    drops = KernelDrops(on_flow=observer.publish, endpoints=cache, identities=allocator, node_name=node)
    drops.start()                 # compiles bpf/kernel_drops.c with offsets from the kernel's BTF
    while running: drops.poll(100)
    drops.stop()

The program filters in the kernel: only IPv4/IPv6 packets, no "consumed"/NOT_SPECIFIED frees (the
normal end of most packets), and by default no TC_INGRESS/TC_EGRESS drops, which flowscope's own TC
programs already report as policy drops with more detail, and no QUEUE_PURGE (socket teardown).
"""

from __future__ import annotations

import ctypes
import itertools
import os
import socket
import struct
import time
import uuid
from dataclasses import dataclass
from typing import Callable, Iterable

from collector.btf import VMLINUX_BTF, Btf, load_btf
from collector.datapath.enrich import Enricher
from common.protocols import L4_NAMES
from common.endpoints import EndpointSource
from collector.identity import IdentityAllocator
from collector.tracefs import TRACEFS_DIRS, TracepointError, record_offsets
from common.errors import UserError
from proto.flow import flow_pb2

BPF_SOURCE = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "bpf", "kernel_drops.c")
# struct drop_event in bpf/kernel_drops.h
DROP_EVENT_FORMAT = struct.Struct("<QQ16s16sIIIIHHBB2x")
EVENT_DROP = 1  # Cilium monitor message type of drops
# TC drops are flowscope's own (reported with policy detail); QUEUE_PURGE frees what a closing socket
# still held queued — socket teardown, not a packet lost on the network, and frequent with HTTP clients.
DEFAULT_EXCLUDED = ("TC_INGRESS", "TC_EGRESS", "QUEUE_PURGE")

# Kernel reason -> the Hubble DropReason meaning the same thing (others: DROP_REASON_UNKNOWN).
HUBBLE_REASONS = {
    "NO_SOCKET": flow_pb2.SOCKET_LOOKUP_FAILED,
    "IP_INNOROUTES": flow_pb2.UNROUTABLE,
    "IP_OUTNOROUTES": flow_pb2.UNROUTABLE,
    "IP_INADDRERRORS": flow_pb2.UNROUTABLE,
    "IP_INVALID_DEST": flow_pb2.UNROUTABLE,
    "IP_INVALID_SOURCE": flow_pb2.INVALID_SOURCE_IP,
    "IP_LOCAL_SOURCE": flow_pb2.INVALID_SOURCE_IP,
    "IP_RPFILTER": flow_pb2.INVALID_SOURCE_IP,
    "MAC_INVALID_SOURCE": flow_pb2.INVALID_SOURCE_MAC,
    "PKT_TOO_SMALL": flow_pb2.INVALID_PACKET_DROPPED,
    "HDR_TRUNC": flow_pb2.CT_TRUNCATED_OR_INVALID_HEADER,
    "IP_INHDR": flow_pb2.CT_TRUNCATED_OR_INVALID_HEADER,
    "IP_CSUM": flow_pb2.INVALID_PACKET_DROPPED,
    "TCP_CSUM": flow_pb2.INVALID_PACKET_DROPPED,
    "UDP_CSUM": flow_pb2.INVALID_PACKET_DROPPED,
    "ICMP_CSUM": flow_pb2.INVALID_PACKET_DROPPED,
    "IP_NOPROTO": flow_pb2.UNKNOWN_L4_PROTOCOL,
    "UNHANDLED_PROTO": flow_pb2.UNSUPPORTED_L3_PROTOCOL,
    "IPV6DISABLED": flow_pb2.UNSUPPORTED_L3_PROTOCOL,
    "TTL_EXCEEDED": flow_pb2.TTL_EXCEEDED,
}




class KernelDropsError(UserError):
    """The kernel-drop program cannot be built or attached (no BTF, no bcc, no permission)."""


@dataclass(frozen=True, slots=True)
class DropEvent:
    ts_ns: int
    location: int
    saddr: bytes
    daddr: bytes
    reason: int
    ifindex: int
    netns_ino: int
    length: int
    sport: int
    dport: int
    family: int
    l4proto: int

    @classmethod
    def unpack(cls, raw: bytes) -> "DropEvent":
        return cls(*DROP_EVENT_FORMAT.unpack_from(raw))


def reason_names(btf: Btf) -> dict[int, str]:
    """enum skb_drop_reason of the running kernel: value -> name without the SKB_DROP_REASON_ prefix."""
    return {value: name.removeprefix("SKB_DROP_REASON_").removeprefix("SKB_")
            for name, value in btf.enum("skb_drop_reason").items()}


TRACEPOINT = ("skb", "kfree_skb")


def tracepoint_offsets(tracefs_dirs: Iterable[str] = TRACEFS_DIRS) -> dict[str, int]:
    """Field offsets of the skb:kfree_skb record from its format file (fields were added over time)."""
    try:
        return record_offsets(*TRACEPOINT, ("skbaddr", "location", "protocol", "reason"),
                              "a kernel with drop reasons (5.17 or later)", tracefs_dirs)
    except TracepointError as err:
        raise KernelDropsError(str(err)) from None


def program_cflags(btf: Btf, tracepoint: dict[str, int] | None = None) -> list[str]:
    """-D constants for bpf/kernel_drops.c: struct offsets, tracepoint record offsets and reason
    numbers of THIS kernel."""
    offsets = {
        "SKB_HEAD": ("sk_buff", "head"), "SKB_NETWORK_HEADER": ("sk_buff", "network_header"),
        "SKB_TRANSPORT_HEADER": ("sk_buff", "transport_header"), "SKB_LEN": ("sk_buff", "len"),
        "SKB_DEV": ("sk_buff", "dev"), "DEV_IFINDEX": ("net_device", "ifindex"),
        "DEV_NET": ("net_device", "nd_net.net"), "NET_INUM": ("net", "ns.inum"),
    }
    flags = [f"-D{macro}={btf.offset(*where)}" for macro, where in offsets.items()]
    flags += [f"-DTP_{field.upper()}={off}" for field, off in (tracepoint or tracepoint_offsets()).items()]
    by_name = {name: value for value, name in reason_names(btf).items()}
    if "NOT_SPECIFIED" not in by_name:
        raise KernelDropsError(f"{btf.source}: enum skb_drop_reason has no NOT_SPECIFIED; unsupported kernel")
    flags.append(f"-DREASON_MAX_IGNORED={by_name['NOT_SPECIFIED']}")
    # Subsystem reasons carry their subsystem in the upper 16 bits: they are never excluded.
    flags.append(f"-DREASON_SLOTS={max(v for v in by_name.values() if v < 1 << 16) + 1}")
    return flags


class DropDecoder:
    """drop_event bytes -> flow.Flow. Pure: no kernel needed, so it is tested with crafted events."""

    def __init__(self, reasons: dict[int, str], endpoints: EndpointSource | None = None,
                 identities: IdentityAllocator | None = None, node_name: str = "",
                 host_netns_ino: int = 0, enricher: Enricher | None = None) -> None:
        self.reasons = reasons
        # Cached address -> endpoint: the agent passes the TC decoder's Enricher so one invalidate()
        # serves both; otherwise one is made from endpoints + identities.
        self.enricher = enricher or Enricher(endpoints, identities or IdentityAllocator())
        self.node_name = node_name
        self.host_netns_ino = host_netns_ino
        self._offset = time.time_ns() - time.monotonic_ns()
        self._uuid_prefix = str(uuid.uuid4())[:24]
        self._seq = itertools.count()

    def decode(self, raw: bytes) -> flow_pb2.Flow:
        try:
            event = DropEvent.unpack(raw)
        except struct.error:
            raise KernelDropsError(f"kernel drop event of {len(raw)} bytes: expected "
                                   f"{DROP_EVENT_FORMAT.size}") from None
        if event.family not in (4, 6):
            raise KernelDropsError(f"kernel drop event family {event.family}: expected 4 or 6")
        return self.decode_event(event)

    def decode_event(self, event: DropEvent) -> flow_pb2.Flow:
        af, size = (socket.AF_INET, 4) if event.family == 4 else (socket.AF_INET6, 16)
        src, dst = socket.inet_ntop(af, event.saddr[:size]), socket.inet_ntop(af, event.daddr[:size])
        flow = flow_pb2.Flow()
        wall = event.ts_ns + self._offset
        flow.time.seconds, flow.time.nanos = divmod(wall, 1_000_000_000)
        flow.uuid = f"{self._uuid_prefix}{next(self._seq):012x}"
        flow.node_name = self.node_name
        flow.Type = flow_pb2.L3_L4
        flow.IP.source, flow.IP.destination = src, dst
        flow.IP.ipVersion = flow_pb2.IPv4 if event.family == 4 else flow_pb2.IPv6
        source, destination = self.enricher.peer(src), self.enricher.peer(dst)
        flow.source.CopyFrom(source.endpoint)
        flow.destination.CopyFrom(destination.endpoint)
        # The pod the drop concerns: a packet dropped on its way in is the destination pod's ingress.
        if destination.is_pod:
            flow.traffic_direction = flow_pb2.INGRESS
        elif source.is_pod:
            flow.traffic_direction = flow_pb2.EGRESS
        self._l4(flow, event)
        name = self.reasons.get(event.reason, f"REASON_{event.reason}")
        desc = HUBBLE_REASONS.get(name, flow_pb2.DROP_REASON_UNKNOWN)
        flow.verdict = flow_pb2.DROPPED
        flow.kernel_drop_reason = name
        flow.drop_reason = desc
        flow.drop_reason_desc = desc
        flow.event_type.type = EVENT_DROP
        flow.event_type.sub_type = desc
        flow.interface.index = event.ifindex
        if event.netns_ino and event.netns_ino == self.host_netns_ino:
            flow.interface.name = _ifname(event.ifindex)
        flow.Summary = f"{L4_NAMES.get(event.l4proto, f'IP protocol {event.l4proto}')} " \
                       f"dropped by the kernel ({name})"
        return flow

    @staticmethod
    def _l4(flow: flow_pb2.Flow, event: DropEvent) -> None:
        if event.l4proto == socket.IPPROTO_TCP:
            flow.l4.TCP.source_port, flow.l4.TCP.destination_port = event.sport, event.dport
        elif event.l4proto == socket.IPPROTO_UDP:
            flow.l4.UDP.source_port, flow.l4.UDP.destination_port = event.sport, event.dport
        elif event.l4proto == socket.IPPROTO_ICMP:
            flow.l4.ICMPv4.type, flow.l4.ICMPv4.code = event.sport, event.dport
        elif event.l4proto == socket.IPPROTO_ICMPV6:
            flow.l4.ICMPv6.type, flow.l4.ICMPv6.code = event.sport, event.dport


def concerns_node(flow: flow_pb2.Flow, endpoints: EndpointSource | None, only_known: bool = True) -> bool:
    """Whether this node's collector reports the drop. A drop concerns the pod it happened to: the
    destination pod if there is one (dropped on the way in), else the source pod; with several
    collectors on one machine (lab nodes) each reports only its own pods' drops."""
    if flow.destination.pod_name:
        ip = flow.IP.destination
    elif flow.source.pod_name:
        ip = flow.IP.source
    else:
        return not only_known
    ep = endpoints.endpoint_by_ip(ip) if endpoints is not None else None
    node = getattr(endpoints, "node_name", "")
    return ep is not None and (not node or ep.node_name in ("", node))


def _ifname(ifindex: int) -> str:
    try:
        return socket.if_indextoname(ifindex)
    except OSError:
        return ""


def host_netns_ino() -> int:
    return os.stat("/proc/self/ns/net").st_ino


class KernelDrops:
    """Loads bpf/kernel_drops.c on skb:kfree_skb and hands each drop to `on_flow` as a flow.Flow.

    `only_known=True` keeps only drops where at least one end is a known endpoint (the lab's or the
    cluster's pods), which hides the host's own background drops. Pass the datapath decoder's
    `enricher` to share its cache (else call `invalidate()` when endpoints change)."""

    def __init__(self, on_flow: Callable[[flow_pb2.Flow], None], endpoints: EndpointSource | None = None,
                 identities: IdentityAllocator | None = None, node_name: str = "",
                 btf_path: str = VMLINUX_BTF, exclude: Iterable[str] = DEFAULT_EXCLUDED,
                 only_known: bool = True, page_count: int = 64, enricher: Enricher | None = None) -> None:
        self.on_flow = on_flow
        self.enricher = enricher
        self.endpoints = endpoints
        self.identities = identities
        self.node_name = node_name
        self.btf_path = btf_path
        self.exclude = tuple(exclude)
        self.only_known = only_known
        self.page_count = page_count
        self.lost = 0
        self.errors = 0
        self.decoder: DropDecoder | None = None
        self._bpf = None

    def start(self) -> None:
        btf = load_btf(self.btf_path)
        cflags = program_cflags(btf)
        self.decoder = DropDecoder(reason_names(btf), self.endpoints, self.identities, self.node_name,
                                   host_netns_ino(), self.enricher)
        try:
            from bcc import BPF
        except ImportError:
            raise KernelDropsError("python module bcc not found: install Debian's python3-bpfcc "
                                   "(deploy/local/setup.sh) and use a venv with system site packages") from None
        include = f"-I{os.path.dirname(BPF_SOURCE)}"
        try:
            self._bpf = BPF(src_file=BPF_SOURCE.encode(), cflags=[include, *cflags])
        except Exception as err:
            raise KernelDropsError(f"{BPF_SOURCE}: cannot load the kernel-drop program: {err} "
                                   f"(needs root, kernel headers linked by deploy/local/setup.sh)") from None
        excluded = self._bpf[b"excluded_reasons"]
        for value, name in reason_names(btf).items():
            if name in self.exclude and value < 1 << 16:
                excluded[ctypes.c_int(value)] = ctypes.c_uint8(1)
        self._bpf.attach_tracepoint(tp=":".join(TRACEPOINT).encode(), fn_name=b"on_kfree_skb")
        self._bpf[b"drop_events"].open_perf_buffer(self._on_event, page_cnt=self.page_count,
                                                  lost_cb=self._on_lost)

    def _on_event(self, cpu: int, data: int, size: int) -> None:
        import ctypes
        raw = ctypes.string_at(data, size)
        try:
            flow = self.decoder.decode(raw)
        except KernelDropsError:
            self.errors += 1
            return
        if self.endpoints is not None and not concerns_node(flow, self.endpoints, self.only_known):
            return
        self.on_flow(flow)

    def invalidate(self) -> None:
        """Endpoints changed (pods came or went): forget cached address lookups."""
        if self.decoder is not None:
            self.decoder.enricher.invalidate()

    def _on_lost(self, count: int) -> None:
        self.lost += count

    def poll(self, timeout_ms: int = 100) -> None:
        if self._bpf is None:
            raise KernelDropsError("KernelDrops.poll() before start()")
        self._bpf.perf_buffer_poll(timeout=timeout_ms)

    def stop(self) -> None:
        if self._bpf is not None:
            self._bpf.cleanup()
            self._bpf = None
