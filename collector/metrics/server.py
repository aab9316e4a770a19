"""The /metrics endpoint: prometheus_client's threaded HTTP server on a given registry."""

from __future__ import annotations

import argparse

from prometheus_client import start_http_server
from prometheus_client.registry import REGISTRY, CollectorRegistry

from common.errors import UserError
from common.tls import TLSConfig, load_server_files

DEFAULT_ADDRESS = ":9965"


def parse_address(address: str) -> tuple[str, int]:
    """":9965" -> ("0.0.0.0", 9965); "127.0.0.1:0" -> ephemeral port; "[::1]:9965" -> IPv6."""
    host, sep, port = address.rpartition(":")
    if not sep or not (port.isascii() and port.isdigit()) or int(port) > 65535:
        raise UserError(f"metrics address {address!r}: expected [host]:port, e.g. ':9965' or '127.0.0.1:0'")
    host = host.strip("[]") or "0.0.0.0"
    return host, int(port)


def serve(registry: CollectorRegistry | None = None, address: str = DEFAULT_ADDRESS,
          tls: TLSConfig | None = None):
    """Serve `registry` at http://address/metrics (https:// with `tls`, like Hubble's metrics TLS
    options; with client CAs, scrapers must present a certificate) in a daemon thread.

    Returns (server, port); stop with `server.shutdown(); server.server_close()`."""
    host, port = parse_address(address)
    options = {}
    if tls is not None:
        load_server_files(tls)  # names a bad file here, not as an ssl traceback
        if len(tls.client_cas) > 1:
            raise UserError("metrics TLS: one client CA file (prometheus_client reads a single bundle)")
        options = {"certfile": tls.cert, "keyfile": tls.key}
        if tls.client_cas:
            options.update(client_cafile=tls.client_cas[0], client_auth_required=True)
    try:
        server, _thread = start_http_server(port, addr=host, registry=registry or REGISTRY, **options)
    except OSError as err:
        raise UserError(f"metrics address {address!r}: cannot listen: {err.strerror or err}") from err
    return server, server.server_port


def add_metrics_arguments(parser: argparse.ArgumentParser, names: tuple[str, ...], default: str, help: str) -> None:
    """The metrics address (`names`: Hubble's flag first, then flowscope's older one) and Hubble's
    metrics TLS options."""
    parser.add_argument(*names, dest="metrics_address", default=default, metavar="ADDRESS", help=help)
    parser.add_argument("--metrics-server-tls-cert-file", metavar="FILE", help="serve metrics over HTTPS (PEM)")
    parser.add_argument("--metrics-server-tls-key-file", metavar="FILE", help="key of the metrics certificate")
    parser.add_argument("--metrics-server-tls-client-ca-files", metavar="FILE",
                        help="CA whose client certificates scrapers must present (mutual TLS)")


def metrics_tls_from_args(args: argparse.Namespace) -> TLSConfig | None:
    cert, key, ca = (args.metrics_server_tls_cert_file, args.metrics_server_tls_key_file,
                     args.metrics_server_tls_client_ca_files)
    if not (cert or key or ca):
        return None
    if not (cert and key):
        raise UserError("metrics TLS needs both --metrics-server-tls-cert-file and --metrics-server-tls-key-file")
    return TLSConfig(cert=cert, key=key, client_ca=ca)
