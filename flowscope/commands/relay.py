"""`flowscope relay`: follow the node collectors, serve the Observer API on :4245, write storage."""

from __future__ import annotations

import argparse
import logging
import signal
import threading
from typing import Callable

from collector.exporter import flags as export_flags
from common.tls import ClientTLS, TLSConfig
from common.errors import UserError
from flowscope.commands.collector import add_stream_limit
from flowscope.http_options import add_http_arguments, http_auth, http_tls
from flowscope.storage_options import add_storage_password_argument, storage_url
from relay.core import Relay, RelayOptions
from relay.discovery import PeerWatcher, normalize_address, parse_peer, peers_from_lab
from relay.service import DEFAULT_RELAY_STREAMS, create_server


log = logging.getLogger("relay")

DEFAULT_STORAGE = "chdb:///var/lib/flowscope/db"


def add_tls_arguments(parser: argparse.ArgumentParser) -> None:
    """TLS options of both sides: clients -> relay (--tls-*) and relay -> collectors (--collector-tls-*)."""
    group = parser.add_argument_group("TLS for clients of the relay")
    group.add_argument("--tls-cert", help="serve TLS with this certificate (PEM)")
    group.add_argument("--tls-key", help="private key of --tls-cert (PEM)")
    group.add_argument("--tls-client-ca", help="CA that signs client certificates (enables mutual TLS)")
    group = parser.add_argument_group("TLS towards the node collectors")
    group.add_argument("--collector-tls", action="store_true", help="connect to collectors with TLS")
    group.add_argument("--collector-tls-ca", help="CA that signs the collectors' certificates")
    group.add_argument("--collector-tls-cert", help="client certificate for mutual TLS (PEM)")
    group.add_argument("--collector-tls-key", help="key of --collector-tls-cert (PEM)")
    group.add_argument("--collector-tls-server-name", help="name expected in the collectors' certificates")


def server_tls(args) -> TLSConfig | None:
    if not (args.tls_cert or args.tls_key or args.tls_client_ca):
        return None
    if not (args.tls_cert and args.tls_key):
        raise UserError("TLS for clients needs both --tls-cert and --tls-key")
    return TLSConfig(cert=args.tls_cert, key=args.tls_key, client_ca=args.tls_client_ca)


def collector_tls(args) -> ClientTLS | None:
    if not (args.collector_tls or args.collector_tls_ca or args.collector_tls_cert):
        return None
    return ClientTLS(ca=args.collector_tls_ca, cert=args.collector_tls_cert, key=args.collector_tls_key,
                     server_name=args.collector_tls_server_name)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--listen-address", default=":4245", help="Observer API address (default :4245)")
    parser.add_argument("--peer", action="append", default=[], metavar="NAME=HOST:PORT",
                        help="a node collector to follow (repeatable)")
    parser.add_argument("--lab-state", metavar="PATH",
                        help="follow the collectors of a lab's nodes (node i on --lab-collector-port + i)")
    parser.add_argument("--lab-collector-port", type=int, default=4244,
                        help="port of the first lab node's collector (default 4244)")
    parser.add_argument("--peer-service", metavar="HOST:PORT",
                        help="discover collectors from a peer.Peer Notify stream (same TLS as the collectors)")
    parser.add_argument("--peers-from-kubernetes", metavar="NAMESPACE/SELECTOR",
                        help="follow the collector pods matching a label selector, e.g. "
                             "flowscope/app.kubernetes.io/name=flowscope-collector (port --collector-port)")
    parser.add_argument("--collector-port", type=int, default=4244,
                        help="collectors' Observer port for --peers-from-kubernetes (default 4244)")
    parser.add_argument("--kubeconfig", help="kubeconfig file (default: in-cluster, else ~/.kube/config)")
    parser.add_argument("--storage", default=DEFAULT_STORAGE,
                        help=f"flow store URL, or 'none' for memory only (default {DEFAULT_STORAGE})")
    add_storage_password_argument(parser)
    parser.add_argument("--ring-capacity", type=int, default=65536, help="flows kept in memory")
    parser.add_argument("--metrics-address", default="",
                        help="Prometheus metrics of the relay (flowscope_*: nodes, ring, spool), e.g. :9966")
    add_http_api_arguments(parser, default=None)
    add_stream_limit(parser, DEFAULT_RELAY_STREAMS, "relay's Observer API")
    add_tls_arguments(parser)
    export_flags.add_arguments(parser)


def add_http_api_arguments(parser: argparse.ArgumentParser, default: str | None) -> None:
    """The JSON HTTP API's options (relay and `flowscope up`)."""
    parser.add_argument("--http-api-address", default=default,
                        help="serve the JSON HTTP API (for Grafana) here, e.g. 127.0.0.1:4246; other than "
                             "loopback needs authentication" + (f" (default {default}; '' = none)" if default else ""))
    parser.add_argument("--http-api-cors-origin", action="append", default=[], metavar="ORIGIN",
                        help="let pages of this origin (https://host[:port]) read the API from a browser "
                             "(repeatable; default none)")
    add_http_arguments(parser, "http-api-", "FLOWSCOPE_HTTP_API", "JSON HTTP API")


def listen_address(address: str) -> str:
    return f"0.0.0.0{address}" if address.startswith(":") else address


def open_storage(url: str):
    """(store, writer) for a storage URL; (None, None) for 'none'."""
    if url == "none":
        return None, None
    import storage
    store = storage.open_store(url)
    store.migrate()
    return store, storage.FlowWriter(store)


def discover(relay: Relay, args) -> list:
    """Start following every collector named by --peer, --lab-state, --peer-service and
    --peers-from-kubernetes; returns the watchers to stop."""
    tls = collector_tls(args)
    peers = [parse_peer(spec, tls) for spec in args.peer]
    if args.lab_state:
        peers += peers_from_lab(args.lab_state, tls, base_port=args.lab_collector_port)
    for peer in peers:
        relay.add_peer(peer)
    watchers = []
    if args.peer_service:
        watchers.append(PeerWatcher(normalize_address(args.peer_service), relay.add_peer, relay.remove_peer,
                                    tls=tls, node_tls=tls).start())
    if getattr(args, "peers_from_kubernetes", None):
        from collector.k8s import load_api_client
        from relay.k8s_discovery import KubernetesPeers, parse_pod_selector
        namespace, selector = parse_pod_selector(args.peers_from_kubernetes)
        watchers.append(KubernetesPeers(load_api_client(args.kubeconfig), namespace, selector,
                                        relay.add_peer, relay.remove_peer, port=args.collector_port,
                                        tls=tls).start())
    if not peers and not watchers:
        raise UserError("no collectors to follow: give --peer NAME=HOST:PORT, --lab-state, --peer-service "
                        "or --peers-from-kubernetes")
    return watchers


def prepare_http_api(args) -> Callable | None:
    """Checks the JSON HTTP API's options (before any store is opened: fail fast) and returns what
    starts it over a store (ui.json_api, in a daemon thread); None when not asked for."""
    if not args.http_api_address:
        return None
    if args.storage == "none":
        raise UserError("--http-api-address needs a flow store (--storage is 'none')")
    from ui.json_api import check_settings, create_http_api
    address, origins = listen_address(args.http_api_address), tuple(args.http_api_cors_origin)
    auth, tls = http_auth(args, "http-api-", "FLOWSCOPE_HTTP_API"), http_tls(args, "http-api-")
    check_settings(address, auth, origins)
    return lambda store: create_http_api(store, address, auth=auth, cors_origins=origins, tls=tls)


def start_metrics(relay: Relay, writer, address: str, exporters=None):
    """The relay's health metrics (collector.metrics.HealthMetrics, and the exporters' counters) on
    `address`; None if not asked."""
    if not address:
        return None
    from prometheus_client import CollectorRegistry

    from collector.metrics import HealthMetrics, serve
    registry = CollectorRegistry()
    health = HealthMetrics(registry)
    health.watch_status(relay.status)
    if writer is not None:
        health.watch_spool_bytes(lambda: writer.stats().spool_bytes)
        writer.insert_hooks.append(health.observe_storage_write)
    if exporters is not None:
        export_flags.register_metrics(exporters, registry)
    return serve(registry, listen_address(address))[0]


def export_hooks(exporters) -> tuple:
    """The relay hooks that feed the exporters every merged flow."""
    return (exporters.offer,) if exporters is not None else ()


def run(args) -> int:
    export_flags.static_config(args)  # a bad export flag fails before storage opens
    start_http_api = prepare_http_api(args)
    store, writer = open_storage(storage_url(args))
    exporters = export_flags.start_exporters(args)
    relay = Relay(store, writer, RelayOptions(ring_capacity=args.ring_capacity),
                  hooks=export_hooks(exporters)).start()
    watchers: list = []
    server = http = metrics = None
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        server, port = create_server(relay, listen_address(args.listen_address), server_tls(args),
                                     max_streams=args.max_flow_streams)
        watchers = discover(relay, args)
        http = start_http_api(store) if start_http_api else None
        metrics = start_metrics(relay, writer, args.metrics_address, exporters)
        log.info("relay: Observer API on port %d, storage %s%s%s", port,
                 store.url.redacted() if store is not None else "none",
                 f", HTTP API on port {http.port}" if http else "",
                 f", metrics on port {metrics.server_port}" if metrics else "")
        stop.wait()
    except KeyboardInterrupt:
        pass
    finally:
        for watcher in watchers:
            watcher.stop()
        if server is not None:
            server.stop(grace=2).wait()
        relay.stop()
        if exporters is not None:
            exporters.stop()
        if http is not None:
            http.stop()
        if metrics is not None:
            metrics.shutdown()
        if writer is not None:
            writer.close()
    return 0
