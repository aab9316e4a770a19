"""L7 parsers: payload prefixes of TCP segments and UDP datagrams -> Hubble-shaped Layer7 records
(HTTP/1.x, HTTP/2 and gRPC, DNS, Kafka). Contract: shared/contracts.md, section L7."""

from .dispatcher import L7Dispatcher
from .fqdn import FqdnCache
from .httprecord import grpc_call, grpc_status
from .types import ConnKey, L7Config, L7ParseError, L7Record, L7Stats, PortRule

__all__ = [
    "ConnKey", "FqdnCache", "L7Config", "L7Dispatcher", "L7ParseError", "L7Record", "L7Stats", "PortRule",
    "grpc_call", "grpc_status",
]
