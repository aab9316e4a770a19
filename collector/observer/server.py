"""create_server: the Observer API (observer.Observer, flowscope.FlowBatches, gRPC health with
"hubble.server.Observer" SERVING) on a TCP address and/or a unix socket, plaintext or TLS."""

from __future__ import annotations

import os
from concurrent import futures

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from collector.observer.limits import DEFAULT_HISTORY_STREAMS, DEFAULT_MAX_STREAMS, StreamLimits
from collector.observer.observer import Observer
from collector.observer.service import FlowBatchesServicer, ObserverServicer
from common.tls import TLSConfig, server_credentials
from common.errors import UserError
from proto.observer import observer_pb2_grpc

HEALTH_SERVICE = "hubble.server.Observer"
DEFAULT_ADDRESS = "0.0.0.0:4244"
DEFAULT_UNIX_SOCKET = "unix:///var/run/flowscope/observer.sock"
# Each flow stream holds a worker thread for its lifetime; these workers are never held by one, so
# health probes, ServerStatus and the refusals of streams past the limit are answered at once.
RESERVED_WORKERS = 16


class ServerError(UserError):
    """The server cannot listen where it was asked to."""


def add_health(server: grpc.Server) -> health.HealthServicer:
    """Registers the standard health service answering SERVING for Hubble's service name."""
    servicer = health.HealthServicer()
    for name in ("", HEALTH_SERVICE):
        servicer.set(name, health_pb2.HealthCheckResponse.SERVING)
    health_pb2_grpc.add_HealthServicer_to_server(servicer, server)
    return servicer


def unix_target(path: str) -> str:
    """'/run/x.sock', 'unix:/run/x.sock' or 'unix:///run/x.sock' -> gRPC's 'unix:///run/x.sock'."""
    if path.startswith("unix://"):
        path = path[len("unix://"):]
    elif path.startswith("unix:"):
        path = path[len("unix:"):]
    return "unix://" + os.path.abspath(path)


def _bind(server: grpc.Server, target: str, creds: grpc.ServerCredentials | None) -> int:
    try:
        port = server.add_secure_port(target, creds) if creds else server.add_insecure_port(target)
    except RuntimeError as err:
        raise ServerError(f"cannot listen on {target}: {err}") from None
    if port == 0 and not target.startswith("unix:"):
        raise ServerError(f"cannot listen on {target}: address in use or not available")
    return port


def _prepare_socket(target: str) -> None:
    path = target[len("unix://"):]
    try:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        if os.path.exists(path):
            os.unlink(path)  # a stale socket from a previous run would make the bind fail
    except OSError as err:
        raise ServerError(f"cannot listen on {target}: {err.strerror}") from None


def create_server(observer: Observer, address: str | None = DEFAULT_ADDRESS, unix_socket: str | None = None,
                  tls: TLSConfig | None = None, max_streams: int = DEFAULT_MAX_STREAMS,
                  history_streams: int = DEFAULT_HISTORY_STREAMS) -> tuple[grpc.Server, int]:
    """Builds and starts the server; returns it and the bound TCP port (0 when `address` is None).
    TLS applies to the TCP port; the unix socket is plaintext, protected by file permissions, as in
    Hubble. At most `max_streams` follow streams and `history_streams` history queries at once (TCP
    and unix socket together), RESOURCE_EXHAUSTED beyond. Stop it with `server.stop(grace_seconds)`."""
    creds = server_credentials(tls) if tls else None
    limits = StreamLimits(max_streams, history_streams)
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=limits.total + RESERVED_WORKERS,
                                                    thread_name_prefix="observer"),
                         options=[("grpc.so_reuseport", 0)])
    observer_pb2_grpc.add_ObserverServicer_to_server(
        ObserverServicer(observer, address=address or "", tls=tls is not None, limits=limits), server)
    FlowBatchesServicer(observer, limits=limits).add_to_server(server)
    add_health(server)
    port = _bind(server, address, creds) if address else 0
    if unix_socket:
        target = unix_target(unix_socket)
        _prepare_socket(target)
        _bind(server, target, None)
    server.start()
    return server, port
