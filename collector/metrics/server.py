"""The /metrics endpoint: prometheus_client's threaded HTTP server on a given registry."""

from __future__ import annotations

from prometheus_client import start_http_server
from prometheus_client.registry import REGISTRY, CollectorRegistry

from common.errors import UserError

DEFAULT_ADDRESS = ":9965"


def parse_address(address: str) -> tuple[str, int]:
    """":9965" -> ("0.0.0.0", 9965); "127.0.0.1:0" -> ephemeral port; "[::1]:9965" -> IPv6."""
    host, sep, port = address.rpartition(":")
    if not sep or not (port.isascii() and port.isdigit()) or int(port) > 65535:
        raise UserError(f"metrics address {address!r}: expected [host]:port, e.g. ':9965' or '127.0.0.1:0'")
    host = host.strip("[]") or "0.0.0.0"
    return host, int(port)


def serve(registry: CollectorRegistry | None = None, address: str = DEFAULT_ADDRESS,
          certfile: str | None = None, keyfile: str | None = None):
    """Serve `registry` at http://address/metrics (https:// with `certfile` and `keyfile`, like Hubble's
    metrics TLS option) in a daemon thread.

    Returns (server, port); stop with `server.shutdown(); server.server_close()`."""
    host, port = parse_address(address)
    if bool(certfile) != bool(keyfile):
        raise UserError("metrics TLS: give both a certificate and a key file")
    try:
        server, _thread = start_http_server(port, addr=host, registry=registry or REGISTRY,
                                            certfile=certfile, keyfile=keyfile)
    except OSError as err:
        raise UserError(f"metrics address {address!r}: cannot listen: {err.strerror or err}") from err
    return server, server.server_port
