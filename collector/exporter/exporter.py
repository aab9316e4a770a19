"""One exporter: flows in from the datapath's thread, Hubble JSON lines out from its own thread.

The datapath only appends to a bounded queue (`offer`): filtering, the field mask, JSON and the disk
all happen on the exporter's thread, so a slow disk never slows the collector or the relay down. When
the queue is full the flows are dropped and counted (`stats.dropped`, flowscope_export_dropped_total);
the file then gets a `lost_events` line (source OBSERVER_EVENTS_QUEUE, as Hubble reports a queue that
overflowed) and the log one line, so whoever reads the file knows what is missing.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from typing import Callable, Sequence

from google.protobuf import timestamp_pb2

from collector.exporter.config import STDOUT, ExportConfig, field_mask
from collector.exporter.rotation import RotatingFile, Sink, StdoutSink
from common.filters import build_request_filter
from common.hubble_json import flow_response, response_line
from proto.flow import flow_pb2
from proto.observer import observer_pb2

log = logging.getLogger(__name__)

DEFAULT_QUEUE_FLOWS = 65_536  # ~1 s of a busy node; a parsed Flow costs ~3 KB while it waits
DROP_LOG_INTERVAL_S = 10.0  # at most one "dropped" log line per exporter this often


@dataclass
class ExportStats:
    exported: int = 0  # lines of flows written
    filtered: int = 0  # flows the allow/deny filters or `end` left out
    dropped: int = 0  # flows lost because the queue was full
    errors: int = 0  # failed writes (the flows of that batch are lost and counted in dropped)


def open_sink(config: ExportConfig) -> Sink:
    if config.file_path == STDOUT:
        return StdoutSink()
    return RotatingFile(config.file_path, config.max_bytes, config.max_backups, config.compress)


class FlowExporter:
    """Writes the flows it is offered that pass its filters, with its field mask, as Hubble JSON lines."""

    def __init__(self, config: ExportConfig, sink: Sink | None = None, queue_flows: int = DEFAULT_QUEUE_FLOWS,
                 clock: Callable[[], int] = time.time_ns) -> None:
        self.config = config
        self.name = config.name
        self.stats = ExportStats()
        self._sink = sink if sink is not None else open_sink(config)
        self._match = build_request_filter(config.allow, config.deny)
        self._filtered = bool(config.allow or config.deny)
        self._mask = field_mask(config.field_mask, f"exporter {config.name!r}")
        self._clock = clock
        self._capacity = queue_flows
        self._queue: list[flow_pb2.Flow] = []
        self._unreported = 0  # drops not yet written as a lost_events line
        self._cond = threading.Condition(threading.Lock())
        self._stopping = False
        self._writing = False  # the thread holds a batch it took from the queue
        self._last_drop_log = -DROP_LOG_INTERVAL_S
        self._thread = threading.Thread(target=self._run, name=f"export-{config.name}", daemon=True)
        self._thread.start()
        log.info("exporter %s: writing %s%s", self.name, config.file_path,
                 f" (rotated at {config.max_size_mb} MB, {config.max_backups} backups"
                 f"{', gzip' if config.compress else ''})" if config.file_path != STDOUT else "")

    # -- the datapath's side: never blocks ---------------------------------------------------------

    def offer(self, flows: Sequence[flow_pb2.Flow]) -> None:
        """Queue flows for export; what does not fit is dropped and counted. The flows must not change
        afterwards (the Observer and the relay never change a flow once published)."""
        with self._cond:
            room = self._capacity - len(self._queue)
            if room >= len(flows):
                self._queue.extend(flows)
            else:
                self._queue.extend(flows[:max(room, 0)])
                lost = len(flows) - max(room, 0)
                self.stats.dropped += lost
                self._unreported += lost
            self._cond.notify_all()

    def observe(self, flow: flow_pb2.Flow) -> None:
        """An Observer hook."""
        self.offer((flow,))

    # -- the exporter's thread ----------------------------------------------------------------------

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._queue and not self._unreported and not self._stopping:
                    self._cond.wait()
                batch, self._queue = self._queue, []
                lost, self._unreported = self._unreported, 0
                stopping = self._stopping
                self._writing = True
            if batch or lost:
                self._export(batch, lost)
            with self._cond:
                self._writing = False
                self._cond.notify_all()
            if stopping and not batch:
                self._sink.close()
                return

    def _export(self, batch: list[flow_pb2.Flow], lost: int) -> None:
        lines = []
        if lost:
            lines.append(self._lost_line(lost))
        end = self.config.end_ns
        expired = end is not None and self._clock() > end
        for flow in batch:
            if expired or (self._filtered and not self._match(flow)):
                self.stats.filtered += 1
                continue
            lines.append(response_line(self._response(flow)).encode() + b"\n")
        try:
            self._sink.write(lines)
        except OSError as err:
            flows = len(lines) - (1 if lost else 0)
            with self._cond:  # offer() counts drops too, from the datapath's thread
                self.stats.errors += 1
                self.stats.dropped += flows
            self._log_drop(f"writing {self.config.file_path} failed ({err}); {flows} flows lost")
            return
        self.stats.exported += len(lines) - (1 if lost else 0)

    def _response(self, flow: flow_pb2.Flow) -> observer_pb2.GetFlowsResponse:
        response = flow_response(flow)
        if self._mask is not None:
            masked = flow_pb2.Flow()
            self._mask.MergeMessage(flow, masked)
            response.flow.CopyFrom(masked)
        return response

    def _lost_line(self, lost: int) -> bytes:
        now = self._clock()
        self._log_drop(f"{lost} flows dropped: the export queue ({self._capacity} flows) was full, "
                       f"{self.config.file_path} is written slower than flows arrive")
        response = observer_pb2.GetFlowsResponse(
            lost_events=flow_pb2.LostEvent(source=flow_pb2.OBSERVER_EVENTS_QUEUE, num_events_lost=lost),
            time=timestamp_pb2.Timestamp(seconds=now // 1_000_000_000, nanos=now % 1_000_000_000))
        return response_line(response).encode() + b"\n"

    def _log_drop(self, message: str) -> None:
        now = time.monotonic()
        if now - self._last_drop_log >= DROP_LOG_INTERVAL_S:
            self._last_drop_log = now
            log.warning("exporter %s: %s (%d dropped so far)", self.name, message, self.stats.dropped)

    # -- lifecycle ------------------------------------------------------------------------------------

    def stop(self, timeout: float = 10.0) -> None:
        """Write what is queued, close the file."""
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        self._thread.join(timeout)

    def drain(self, timeout: float = 10.0) -> bool:
        """Wait until everything offered so far is written (tests, shutdown); True when it is."""
        with self._cond:
            return self._cond.wait_for(lambda: not self._queue and not self._writing, timeout)
