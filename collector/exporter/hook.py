"""The exporters of one process as one hook: the static exporter of the `--export-*` flags and the
dynamic ones of `--export-config`, fed by the collector's Observer (per flow) or the relay (per merged
batch)."""

from __future__ import annotations

from typing import Sequence

from collector.exporter.dynamic import DynamicExporters
from collector.exporter.exporter import FlowExporter
from proto.flow import flow_pb2


class Exporters:
    def __init__(self, static: Sequence[FlowExporter] = (), dynamic: DynamicExporters | None = None) -> None:
        self.static = list(static)
        self.dynamic = dynamic

    @property
    def all(self) -> list[FlowExporter]:
        """Every running exporter (the dynamic set as it is now)."""
        return self.static + (self.dynamic.exporters if self.dynamic is not None else [])

    def observe(self, flow: flow_pb2.Flow) -> None:
        """Observer hook (collector.observer.Observer.hooks)."""
        self.offer((flow,))

    def offer(self, flows: Sequence[flow_pb2.Flow]) -> None:
        """Batch hook (relay.Relay.hooks)."""
        for exporter in self.static:
            exporter.offer(flows)
        if self.dynamic is not None:
            self.dynamic.offer(flows)

    def drain(self, timeout: float = 10.0) -> bool:
        return all(exporter.drain(timeout) for exporter in self.all)

    def stop(self) -> None:
        for exporter in self.static:
            exporter.stop()
        if self.dynamic is not None:
            self.dynamic.stop()
