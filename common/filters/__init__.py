"""Hubble FlowFilter semantics, shared by the collector's Observer, the relay and the CLI."""

from common.filters.base import FilterError, FlowPredicate
from common.filters.builder import build_filter, build_request_filter
from common.filters.timerange import flow_time_ns, in_range, time_range

__all__ = ["FilterError", "FlowPredicate", "build_filter", "build_request_filter", "flow_time_ns",
           "in_range", "time_range"]
