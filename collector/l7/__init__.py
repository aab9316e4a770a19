"""L7 parsers: payload prefixes of TCP segments and UDP datagrams -> Hubble-shaped Layer7 records
(HTTP/1.x, HTTP/2 and gRPC, DNS, Kafka). Contract: shared/contracts.md, section L7.

    dispatcher = L7Dispatcher(L7Config())            # one per reader thread: not thread-safe
    for record in dispatcher.on_segment(conn, from_client, payload[:512], segment_len, ts_ns): ...
    dispatcher.on_close(conn)                        # FIN/RST or conntrack expiry
    dispatcher.fqdn.names_for_ip("10.0.0.1")         # FqdnCache fed by the DNS answers (thread-safe)
    dispatcher.stats                                 # records / parse errors per protocol, evictions

gRPC calls are HTTP/2 records (protocol "HTTP/2", method POST, url http://<authority>/<pkg.Service>/<Method>).
The response record of a call carries its trailers' grpc-status and grpc-message as headers (never
redacted by default) and its latency is the whole call's. A call failed when grpc-status != "0"; the
HTTP code is 200 for almost every gRPC error, so it is not the signal. `grpc_call(http)` gives
(service, method) and `grpc_status(http)` the status (None: not gRPC, or no trailers seen).
"""

from .dispatcher import L7Dispatcher
from .fqdn import FqdnCache
from .httprecord import grpc_call, grpc_status
from .types import ConnKey, L7Config, L7ParseError, L7Record, L7Stats, PortRule

__all__ = [
    "ConnKey", "FqdnCache", "L7Config", "L7Dispatcher", "L7ParseError", "L7Record", "L7Stats", "PortRule",
    "grpc_call", "grpc_status",
]
