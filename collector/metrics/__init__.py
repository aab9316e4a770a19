"""Prometheus metrics: Hubble's flow metrics (`hubble_*`) and flowscope's own health (`flowscope_*`).

    registry = prometheus_client.CollectorRegistry()
    metrics = FlowMetrics(["flow", "drop:sourceContext=namespace", "httpV2"], registry)
    observer.encoded_hooks.append(metrics.observe)   # EncodedFlows counted unparsed (see replay.py)
    health = HealthMetrics(registry)
    server, port = serve(registry, ":9965")
"""

from collector.metrics.config import MetricsConfigError, MetricSpec, parse_specs
from collector.metrics.flow_metrics import (DEFAULT_CARDINALITY_LIMIT, DEFAULT_METRICS, DEFAULT_TTL_SECONDS,
                                            FlowMetrics)
from collector.metrics.health import HealthMetrics, RateMeter
from collector.metrics.server import DEFAULT_ADDRESS, parse_address, serve

__all__ = [
    "DEFAULT_ADDRESS", "DEFAULT_CARDINALITY_LIMIT", "DEFAULT_METRICS", "DEFAULT_TTL_SECONDS", "FlowMetrics",
    "HealthMetrics", "MetricSpec", "MetricsConfigError", "RateMeter", "parse_address", "parse_specs", "serve",
]
