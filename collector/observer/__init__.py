"""The node's Observer: ring buffer of flows, hooks, and the Hubble-compatible gRPC API over it."""

from collector.observer.limits import DEFAULT_MAX_STREAMS, StreamLimit, StreamLimits
from collector.observer.observer import DEFAULT_RING_CAPACITY, VERSION, Observer
from collector.observer.request import ALL, FlowQuery, RequestError, parse_request
from collector.observer.server import HEALTH_SERVICE, ServerError, add_health, create_server, unix_target
from collector.observer.service import FlowBatchesServicer, ObserverServicer

__all__ = ["ALL", "DEFAULT_MAX_STREAMS", "DEFAULT_RING_CAPACITY", "HEALTH_SERVICE", "VERSION",
           "FlowBatchesServicer", "FlowQuery", "Observer", "ObserverServicer", "RequestError", "ServerError",
           "StreamLimit", "StreamLimits",
           "add_health", "create_server", "parse_request", "unix_target"]
