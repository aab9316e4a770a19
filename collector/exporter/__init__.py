"""Flow export to files, like Hubble's exporter: every flow (or those the filters allow) as a Hubble
JSON line (`hubble observe -o json`), to a rotated file or stdout, never blocking the datapath.

    exporters = Exporters([FlowExporter(ExportConfig("static-exporter", "/var/log/flows.log"))],
                          DynamicExporters("/etc/flowscope/flowlogs.yaml"))
    observer.hooks.append(exporters.observe)     # a collector: per flow
    relay.hooks.append(exporters.offer)          # a relay: per merged batch
    ExportMetrics(lambda: exporters.all).register(registry)
    exporters.stop()
"""

from collector.exporter.config import (STDOUT, ExportConfig, ExportConfigError, parse_dynamic,
                                       parse_filter_list)
from collector.exporter.dynamic import DynamicExporters
from collector.exporter.exporter import ExportStats, FlowExporter
from collector.exporter.hook import Exporters
from collector.exporter.metrics import ExportMetrics
from collector.exporter.rotation import RotatingFile, StdoutSink

__all__ = ["DynamicExporters", "ExportConfig", "ExportConfigError", "ExportMetrics", "ExportStats",
           "Exporters", "FlowExporter", "RotatingFile", "STDOUT", "StdoutSink", "parse_dynamic",
           "parse_filter_list"]
