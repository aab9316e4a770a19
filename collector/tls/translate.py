"""TLS events -> the datapath's flow events, so the L7 dispatcher and the decoder make the same L7
flows from TLS plaintext as from packets (collector.datapath.decoder, with its `tls` mark).

Per SSL object (one TLS connection in one process) this decides which end the process is (client or
server), and so which process reports the connection: the server's when the server is a pod of this
node, else the client's, exactly as the TC path picks the device it captures on (one L7 record per
request, the same traffic direction). Only processes whose socket address is a local pod's are
reported: the host's own TLS (package managers, the collector) is not a pod's."""

from __future__ import annotations

import socket
from collections import Counter, OrderedDict
from dataclasses import dataclass, field
from typing import Callable

from collector.datapath import events as dp
from collector.datapath.decoder import Decoder
from collector.l7 import ConnKey
from collector.l7.http1 import looks_like_request, looks_like_response
from collector.l7.http2 import PREFACE
from collector.tls import events as tev

_MAX_CONNS = 65536
_MAX_HELD = 64        # events of one SSL object held until its connection is known
_MAX_HELD_CONNS = 4096
_new_flow_event = tuple.__new__


def ephemeral_ports(path: str = "/proc/sys/net/ipv4/ip_local_port_range") -> range:
    """The kernel's range for client ports (connect() without bind())."""
    try:
        with open(path) as f:
            low, high = (int(v) for v in f.read().split())
        return range(low, high + 1)
    except (OSError, ValueError):
        return range(32768, 61000)


def is_client(op: int, data: bytes, lport: int, rport: int, ephemeral: range) -> bool | None:
    """Is the process that made this call the connection's client? From what it sent or received
    (a request, the HTTP/2 preface, a response), else from which end has a client port; None if
    neither tells (the next call may)."""
    if data.startswith(PREFACE[:8]) or looks_like_request(data):
        return op == tev.OP_WRITE
    if looks_like_response(data):
        return op == tev.OP_READ
    local, remote = lport in ephemeral, rport in ephemeral
    if local != remote:
        return local
    return None


@dataclass
class TranslateStats:
    events: int = 0
    not_pod: int = 0        # the socket is not in a local pod's network namespace
    other_end: int = 0      # the server, a local pod, reports the connection
    undecided: int = 0      # client or server not known yet: the call was not used
    unbound_dropped: int = 0
    by_op: Counter = field(default_factory=Counter)


@dataclass(slots=True)
class _Ssl:
    conn: ConnKey
    client: bool
    ifindex: int
    reports: bool


class TlsTranslator:
    """Feed raw TLS events in time order; get flows. `pod_netns` maps the network namespace inode of a
    local pod to its device's ifindex, `local_pods` a local pod's packed address (16 bytes, IPv4
    zero-padded) to the same (both kept current by the capture)."""

    def __init__(self, decoder: Decoder, local_pods: dict[bytes, int] | None = None,
                 pod_netns: dict[int, int] | None = None, ephemeral: range | None = None,
                 resolve_netns: Callable[[int, int], int | None] | None = None) -> None:
        """`resolve_netns(tgid, netns inode)` names the pod device of a namespace not in `pod_netns`
        (a process started since the capture's last scan); None: not a local pod's."""
        self.decoder = decoder
        self.local_pods = local_pods if local_pods is not None else {}
        self.pod_netns = pod_netns if pod_netns is not None else {}
        self.resolve_netns = resolve_netns
        self._not_pods: set[int] = set()
        self.ephemeral = ephemeral if ephemeral is not None else ephemeral_ports()
        self.stats = TranslateStats()
        self._ssl: OrderedDict[tuple[int, int], _Ssl] = OrderedDict()
        self._held: OrderedDict[tuple[int, int], list[tuple[tev.TlsEvent, bytes]]] = OrderedDict()

    def feed(self, raw: bytes) -> list:
        """Flows of one TLS event (raises struct.error for a short event)."""
        event = tev.unpack_event(raw)
        self.stats.events += 1
        self.stats.by_op[event.op] += 1
        key = (event.tgid, event.ssl)
        if event.op == tev.OP_FREE:
            self._forget(key)
            return []
        if event.op == tev.OP_BIND:
            flows = []
            for held, data in self._held.pop(key, ()):
                flows += self._data(held._replace(family=event.family, laddr=event.laddr, raddr=event.raddr,
                                                  lport=event.lport, rport=event.rport, netns=event.netns), data)
            return flows
        data = tev.payload(raw, event)
        if not event.family:
            self._hold(key, event, data)
            return []
        return self._data(event, data)

    def set_pods(self, local_pods: dict[bytes, int], pod_netns: dict[int, int]) -> None:
        self.local_pods = local_pods
        self.pod_netns = pod_netns
        self._not_pods = set()

    def forget_process(self, tgid: int) -> None:
        """The process exited: its SSL objects' addresses may be reused by another process."""
        for key in [k for k in (*self._ssl, *self._held) if k[0] == tgid]:
            self._forget(key)

    def _forget(self, key: tuple[int, int]) -> None:
        """The SSL object is gone (SSL_free, or its process): end its connection's parser state."""
        self._held.pop(key, None)
        ssl = self._ssl.pop(key, None)
        if ssl is not None and ssl.reports:
            self.decoder.l7.on_close(ssl.conn)

    def _hold(self, key: tuple[int, int], event: tev.TlsEvent, data: bytes) -> None:
        held = self._held.get(key)
        if held is None:
            held = self._held[key] = []
            if len(self._held) > _MAX_HELD_CONNS:
                self.stats.unbound_dropped += len(self._held.popitem(last=False)[1])
        if len(held) < _MAX_HELD:
            held.append((event, data))
        else:
            self.stats.unbound_dropped += 1

    def _data(self, event: tev.TlsEvent, data: bytes) -> list:
        key = (event.tgid, event.ssl)
        ssl = self._ssl.get(key)
        if ssl is None:
            ssl = self._new_ssl(key, event, data)
            if ssl is None:
                return []
        else:
            self._ssl.move_to_end(key)
        if not ssl.reports:
            self.stats.other_end += 1
            return []
        family, laddr = tev.unmapped(event.family, event.laddr)
        raddr = tev.unmapped(event.family, event.raddr)[1]
        write = event.op == tev.OP_WRITE
        # The flow event of the bytes' sender: a write leaves this pod, a read arrives at it.
        src, dst, sport, dport = (laddr, raddr, event.lport, event.rport) if write else \
            (raddr, laddr, event.rport, event.lport)
        flow_event = _new_flow_event(dp.FlowEvent, (
            event.ts_ns, 0, 0, 0, 0, 0, src, dst, ssl.ifindex, 0, 0, 0, sport, dport, 0, len(data), family,
            socket.IPPROTO_TCP, dp.EV_NONE, dp.OBS_FROM_POD if write else dp.OBS_TO_POD,
            int(write != ssl.client), 0, 0, 0, 0, event.mode, 0, 0, event.len))
        return self.decoder.decode_event_encoded(flow_event, data)

    def _new_ssl(self, key: tuple[int, int], event: tev.TlsEvent, data: bytes) -> _Ssl | None:
        family, laddr = tev.unmapped(event.family, event.laddr)
        ifindex = self.pod_netns.get(event.netns)
        if ifindex is None and self.resolve_netns is not None and event.netns not in self._not_pods:
            ifindex = self.resolve_netns(event.tgid, event.netns)
            if ifindex is None:
                self._not_pods.add(event.netns)
            else:
                self.pod_netns[event.netns] = ifindex
        if ifindex is None:
            self.stats.not_pod += 1
            return None
        client = is_client(event.op, data, event.lport, event.rport, self.ephemeral)
        if client is None:
            self.stats.undecided += 1
            return None
        raddr = tev.unmapped(event.family, event.raddr)[1]
        af = socket.AF_INET if family == 4 else socket.AF_INET6
        local = socket.inet_ntop(af, laddr[:4] if family == 4 else laddr)
        remote = socket.inet_ntop(af, raddr[:4] if family == 4 else raddr)
        if client:
            conn = ConnKey(af, local, event.lport, remote, event.rport, socket.IPPROTO_TCP)
        else:
            conn = ConnKey(af, remote, event.rport, local, event.lport, socket.IPPROTO_TCP)
        reports = not client or raddr not in self.local_pods
        ssl = self._ssl[key] = _Ssl(conn, client, ifindex, reports)
        if len(self._ssl) > _MAX_CONNS:
            self._ssl.popitem(last=False)
        return ssl
