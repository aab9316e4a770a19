"""The exporters' counters as Prometheus metrics, read at scrape time (the exporters keep plain counts):
flowscope_export_flows_total{exporter}, flowscope_export_dropped_total{exporter} (queue full or a failed
write), flowscope_export_filtered_total{exporter} and flowscope_exporters (running exporters)."""

from __future__ import annotations

from typing import Callable, Iterator

from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from collector.exporter.exporter import FlowExporter


class ExportMetrics:
    """A prometheus_client collector over `exporters()` (e.g. Exporters.all, which follows reloads).
    A counter of a removed exporter disappears with it, as a restarted process's would."""

    def __init__(self, exporters: Callable[[], list[FlowExporter]]) -> None:
        self._exporters = exporters

    def register(self, registry: CollectorRegistry) -> "ExportMetrics":
        registry.register(self)
        return self

    def collect(self) -> Iterator[Metric]:
        exporters = self._exporters()
        families = {
            "exported": CounterMetricFamily("flowscope_export_flows", "Flows written by each exporter",
                                            labels=["exporter"]),
            "dropped": CounterMetricFamily("flowscope_export_dropped", "Flows an exporter lost: its queue "
                                           "was full (slow disk) or a write failed", labels=["exporter"]),
            "filtered": CounterMetricFamily("flowscope_export_filtered", "Flows an exporter's filters (or "
                                            "its end time) left out", labels=["exporter"]),
        }
        for exporter in exporters:
            for field, family in families.items():
                family.add_metric([exporter.name], getattr(exporter.stats, field))
        yield from families.values()
        yield GaugeMetricFamily("flowscope_exporters", "Flow exporters running", value=len(exporters))
