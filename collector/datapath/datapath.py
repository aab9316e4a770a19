"""The running datapath: programs loaded, attached to every local pod device, events decoded into flows.

One thread does everything that touches bcc: it drains the perf rings in bulk (events -> reorder ->
decoder -> sink) and, every `sync_interval_s`, follows the endpoint source (attach new pod devices,
detach gone ones, refresh the maps the programs read) and sweeps the connection table. Nothing an
event or a device does can stop that thread: bad events are counted, vanished devices are dropped
quietly."""

from __future__ import annotations

import ctypes
import ipaddress
import logging
import threading
import time
from dataclasses import dataclass
from typing import Callable

from collector.datapath import conntrack, events as ev
from collector.datapath.attach import DeviceGone, TcAttacher
from collector.datapath.decoder import DecodeError, Decoder
from collector.datapath.loader import DatapathConfig, load
from collector.datapath.perfring import BccRings, PerfRings, open_rings, reader_loop, take_until
from common.endpoints import EndpointSource
from collector.observer.wire import EncodedFlow
from proto.flow import flow_pb2

log = logging.getLogger(__name__)

FlowSink = Callable[[list[flow_pb2.Flow | EncodedFlow]], None]  # Observer.publish_many
LostSink = Callable[[flow_pb2.LostEvent], None]
# Flows per Observer.publish_many: decode + publish of 200k events took 8.7-10.1 us/event in batches
# of 64, 10.7-12.1 in batches of 800 (more flows alive at once) and 11.8-13.5 one by one.
PUBLISH_BATCH = 64
# Events decoded (or connections swept) between two reads of the perf rings inside one step: a long
# step (a burst of events, a sweep of 20,000 closed connections) must not leave the kernel's rings
# unread while it runs, or they fill and the kernel drops what follows. Reading is a copy and one
# struct unpack per event; the events wait in `_pending` (user memory) instead of the rings.
READ_EVERY = 2048
# What `_pending` may hold before those reads stop: beyond it the rings fill and the kernel counts the
# loss (LostEvent), as it would without them; memory stays bounded (~200 bytes an event).
MAX_PENDING = 1 << 18


@dataclass
class DatapathStats:
    events: int = 0
    flows: int = 0
    decode_errors: int = 0
    sink_errors: int = 0
    lost: int = 0
    ended: int = 0
    attached: int = 0
    pending_max: int = 0  # most events read but not yet decoded at once (how far decoding fell behind)


class Datapath:
    def __init__(self, config: DatapathConfig, endpoints: EndpointSource, decoder: Decoder, sink: FlowSink,
                 lost_sink: LostSink | None = None) -> None:
        self.config = config
        self.endpoints = endpoints
        self.decoder = decoder
        self.sink = sink
        self.lost_sink = lost_sink
        self.stats = DatapathStats()
        self.attached: dict[int, str] = {}  # ifindex -> device
        self._missing: set[int] = set()
        self._local_addrs: dict[bytes, int] = {}
        self._bpf = None
        self._attacher: TcAttacher | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._rings: PerfRings | BccRings | None = None
        self._ct_reader: conntrack.BatchReader | None = None
        self._pending: list[tuple[int, bytes]] = []  # (ts_ns, raw event) held for the reorder window
        self._gc = conntrack.GcPolicy(int(config.close_grace_s * 1e9), int(config.tcp_idle_s * 1e9),
                                      int(config.other_idle_s * 1e9))

    # -- lifecycle -------------------------------------------------------------------------------

    def start(self) -> None:
        self._bpf, fds = load(self.config)
        self._attacher = TcAttacher(fds)
        self._configure_l7_ports()
        from bcc.utils import get_online_cpus  # Debian's python3-bpfcc, like loader.load

        self._rings = open_rings(self._bpf, self._bpf[b"events"], get_online_cpus(), self.config.perf_pages,
                                 self.config.perf_reader)
        self.sync()
        self._thread = threading.Thread(target=self._run, name="flowscope-datapath", daemon=True)
        self._thread.start()

    def stop(self, detach: bool = True) -> None:
        """Stop reading; with detach=False the filters (and any policy they enforce) stay in the kernel."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        if self._thread is None or not self._thread.is_alive():
            if self._rings is not None:
                self._read()
            self._release(1 << 63)  # what the reorder window still held
        if self._rings is not None:
            self._rings.close()
            self._rings = None
        if self._attacher is not None:
            if detach:
                for ifindex in list(self.attached):
                    self._attacher.detach(ifindex)
                self.attached.clear()
            self._attacher.close()
            self._attacher = None
        if self._bpf is not None:
            self._bpf.cleanup()
            self._bpf = None
            self._ct_reader = None

    def _run(self) -> None:
        config = self.config
        reader_loop(self._stop, self._rings, self._read, self._release, config.reorder_window_s,
                    config.sync_interval_s, self._sync_and_sweep, "datapath")

    def _sync_and_sweep(self) -> None:
        self.sync()
        self.sweep()

    # -- events ----------------------------------------------------------------------------------

    def _read(self) -> None:
        """Take every unread event out of the perf rings into the reorder window."""
        pending = self._pending
        held = len(pending)
        lost = self._rings.drain(pending)
        self.stats.events += len(pending) - held
        if len(pending) > self.stats.pending_max:
            self.stats.pending_max = len(pending)
        if lost:
            self._on_lost(lost)

    def _release(self, horizon_ns: int) -> None:
        """Decode, oldest first, every held event at or before `horizon_ns` (kernel monotonic time)."""
        if not self._pending:
            return
        ready, self._pending = take_until(self._pending, horizon_ns)
        decode, flows = self.decoder.decode_encoded, []
        for i, (_ts, raw) in enumerate(ready):
            if i % READ_EVERY == READ_EVERY - 1:
                self._read_between()
            try:  # one frame less per event than a helper: free unless it raises
                flows += decode(raw)
            except DecodeError:
                self.stats.decode_errors += 1
            except Exception:
                self.stats.decode_errors += 1
                log.exception("decoding a datapath event")
            if len(flows) >= PUBLISH_BATCH:
                self._publish(flows)
                flows = []
        self._publish(flows)

    def _read_between(self) -> None:
        """_read() in the middle of a long step, while what it took fits in MAX_PENDING."""
        if self._rings is not None and len(self._pending) < MAX_PENDING:
            self._read()

    def _publish(self, flows: list[flow_pb2.Flow | EncodedFlow]) -> None:
        """Hands a batch to the sink (one call per wakeup, not per flow)."""
        if not flows:
            return
        try:
            self.sink(flows)
        except Exception:
            self.stats.sink_errors += len(flows)
            log.exception("publishing %d flows", len(flows))
        self.stats.flows += len(flows)

    def _on_lost(self, count: int) -> None:
        self.stats.lost += count
        if self.lost_sink is not None:
            self.lost_sink(flow_pb2.LostEvent(source=flow_pb2.PERF_EVENT_RING_BUFFER, num_events_lost=count))

    def sweep(self) -> None:
        """Remove finished connections; report each once (aggregation medium and max)."""
        if self._ct_reader is None:
            self._ct_reader = conntrack.BatchReader(self._bpf[b"conntrack"])
        ended = conntrack.sweep(self._bpf[b"conntrack"], self._gc, time.monotonic_ns(), self._ct_reader,
                                self._read_between, READ_EVERY)
        self.stats.ended += len(ended)
        self.report_ended(ended)

    def report_ended(self, ended: list[ev.FlowEvent]) -> None:
        """The end flows of connections the sweep removed (none at aggregation none: every packet
        was a flow already); their L7 state is freed either way."""
        report = self.config.aggregation != "none"
        flows: list[flow_pb2.Flow | EncodedFlow] = []
        for i, event in enumerate(ended):
            if i % READ_EVERY == READ_EVERY - 1:
                self._read_between()
            if not report:
                self.decoder.close_connection(event)
                continue
            try:
                flows += self.decoder.decode_event_encoded(event)
            except DecodeError:
                self.stats.decode_errors += 1
            if len(flows) >= PUBLISH_BATCH:
                self._publish(flows)
                flows = []
        self._publish(flows)

    # -- following pods --------------------------------------------------------------------------

    def sync(self) -> None:
        """Attach to new local pod devices, detach from gone ones, refresh maps and caches."""
        links = self._attacher.link_names()
        wanted: dict[int, str] = {}
        for ep in self.endpoints.local_endpoints():
            ifindex = ep.ifindex or next((i for i, n in links.items() if n == ep.device), 0)
            if ifindex and links.get(ifindex) == ep.device:
                wanted[ifindex] = ep.device
            elif ep.device and ifindex not in self._missing:
                self._missing.add(ifindex)
                log.info("pod %s/%s: device %s not found, not attached", ep.namespace, ep.pod_name, ep.device)
        for ifindex in set(self.attached) - set(wanted):
            self._attacher.detach(ifindex)
            log.info("detached from %s (ifindex %d)", self.attached.pop(ifindex), ifindex)
        for ifindex, device in wanted.items():
            if ifindex in self.attached:
                continue
            try:
                self._attacher.attach(ifindex)
            except DeviceGone:
                log.info("device %s vanished while attaching", device)
                continue
            self.attached[ifindex] = device
            self._missing.discard(ifindex)
            log.info("attached to %s (ifindex %d)", device, ifindex)
        self.stats.attached = len(self.attached)
        self._sync_local_addrs()
        self.decoder.interfaces = links
        self.decoder.enricher.set_host_ips(self._attacher.host_addresses())
        self.decoder.invalidate()
        self.decoder.sync_clock()

    def _sync_local_addrs(self) -> None:
        wanted = {}
        for ep in self.endpoints.local_endpoints():
            for ip in ep.ips:
                if ip:
                    wanted[ipaddress.ip_address(ip).packed.ljust(16, b"\0")] = ep.ifindex
        table = self._bpf[b"local_addrs"]
        for addr in set(self._local_addrs) - set(wanted):
            try:
                del table[_addr_key(table, addr)]
            except KeyError:
                pass
        for addr, ifindex in wanted.items():
            if self._local_addrs.get(addr) != ifindex:
                table[_addr_key(table, addr)] = table.Leaf(ifindex)
        self._local_addrs = wanted

    def _configure_l7_ports(self) -> None:
        table = self._bpf[b"l7_ports"]
        table.clear()
        for port in self.config.l7_ports:
            table[table.Key(port)] = table.Leaf(ev.L7_PREFIX)
        for port in self.config.stream_ports:
            table[table.Key(port)] = table.Leaf(ev.L7_STREAM)


def _addr_key(table, addr: bytes):
    key = table.Key()
    ctypes.memmove(ctypes.addressof(key), addr, 16)
    return key
