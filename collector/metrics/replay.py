"""Counting an EncodedFlow without parsing it: what the handlers did for the first flow of a kind,
replayed for the next flows of that kind.

A handler is a pure function of a flow and its options. Of a flow the decoder built as bytes it reads
only its template's fields (endpoints, IP, direction, verdict, event type, is_reply), its L4 protocol
and TCP flags, the destination port of a request (port-distribution, flows-to-world) and its Layer7
record — never time, uuid, source port, summary or counters, nor a reply's destination port (the
client's ephemeral port, which both port readers skip). Those are the EncodedFlow's `facts`
(collector/observer/wire.py). Flows alike in them get the same increments, so the first flow of each
kind is parsed and run through a second set of the handlers whose metric vectors only record what
they are asked to do; the increments are applied, remembered, and replayed for the next flows of the
kind: one dict lookup and the increments instead of a parse and ~10 handlers. A response's latency is
the one value that varies within a kind: it is read from the Layer7 bytes and handed to the recorded
histogram observations. tests/collector/metrics/test_replay.py checks both ways give one exposition.
"""

from __future__ import annotations

import threading
from typing import Callable

from collector.metrics.series import SeriesVec
from collector.observer.wire import EncodedFlow
from proto.flow import flow_pb2

# Layer7 type=1 and latency_ns=2: varint fields, serialized before the record (http=101...).
_TYPE, _LATENCY = 0x08, 0x10
_CACHE_LIMIT = 65536  # kinds remembered (a URL or a DNS name makes a kind): cleared when full
Process = Callable[[flow_pb2.Flow], int]  # runs handlers on a flow; returns how many raised


def split_latency(layer7: bytes) -> tuple[bytes, int] | None:
    """(the Layer7 bytes without their latency_ns field, latency_ns), or None for bytes that do not
    start as protobuf serializes a Layer7 (type, then latency_ns) — such a flow is parsed instead."""
    if not layer7:
        return layer7, 0
    pos = 0
    if layer7[0] == _TYPE:
        if len(layer7) < 2 or layer7[1] >= 0x80:
            return None
        pos = 2
    if pos >= len(layer7) or layer7[pos] != _LATENCY:
        return layer7, 0
    value, shift, end = 0, 0, pos + 1
    while end < len(layer7):
        byte = layer7[end]
        value |= (byte & 0x7F) << shift
        end += 1
        if byte < 0x80:
            return layer7[:pos] + layer7[end:], value
        shift += 7
    return None


class Recorder:
    """A metric vector's stand-in in the recording handlers: appends (the real vector's method,
    label values, amount or observed value) to the shared list of operations."""

    __slots__ = ("ops", "target")

    def __init__(self, ops: list) -> None:
        self.ops = ops
        self.target: SeriesVec | None = None

    def inc(self, values: tuple[str, ...], amount: float = 1.0) -> None:
        self.ops.append((self.target.inc, values, amount, False))

    def observe(self, values: tuple[str, ...], value: float) -> None:
        self.ops.append((self.target.observe, values, value, True))


class Replay:
    """`process(flow)` runs the recording handlers (whose vectors are `recorders`, in the order of
    the real vectors `targets`) and returns how many of them raised."""

    def __init__(self, process: Process, ops: list, recorders: list[Recorder], targets: list[SeriesVec]) -> None:
        for recorder, target in zip(recorders, targets, strict=True):
            recorder.target = target
        self._process = process
        self._ops = ops
        self._kinds: dict[tuple, tuple] = {}
        self._lock = threading.Lock()  # the recorders' list is shared: one recording at a time

    def count(self, flow: EncodedFlow) -> int:
        """Counts `flow` (its facts set) in the real vectors; returns how many handlers raised."""
        template, is_reply, proto, dport, flags, layer7 = flow.facts
        split = split_latency(layer7)
        if split is None:
            return self._record(flow, 0.0)[1]
        layer7, latency_ns = split
        seconds = latency_ns / 1e9  # as the handlers compute it: l7.latency_ns / 1e9
        key = (template, is_reply, proto, 0 if is_reply else dport, flags, layer7)
        ops = self._kinds.get(key)
        if ops is None:
            ops, errors = self._record(flow, seconds)
            if ops is not None and not errors:
                if len(self._kinds) >= _CACHE_LIMIT:
                    self._kinds = {}
                self._kinds[key] = ops
            return errors
        for method, values, amount, latency in ops:
            method(values, seconds if latency else amount)
        return 0

    def _record(self, flow: EncodedFlow, seconds: float) -> tuple[tuple | None, int]:
        """Runs the handlers on the parsed flow and applies what they asked for. Returns the
        operations to replay (None if a histogram observed anything but the latency) and the errors."""
        with self._lock:
            self._ops.clear()
            errors = self._process(flow.parse())
            ops = tuple(self._ops)
            self._ops.clear()
        for method, values, amount, _latency in ops:
            method(values, amount)
        if any(latency and amount != seconds for _method, _values, amount, latency in ops):
            return None, errors
        return ops, errors
