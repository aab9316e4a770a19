"""`flowscope relay`: follow the node collectors, serve the Observer API on :4245, write storage."""

from __future__ import annotations

import argparse
import dataclasses
import logging
import signal
import threading
from typing import Callable

from collector.exporter import flags as export_flags
from collector.metrics.server import add_metrics_arguments, metrics_tls_from_args
from common.errors import UserError
from common.tls import ClientTLS, TLSConfig, add_server_arguments, describe as describe_tls, is_loopback, listener_tls
from flowscope.commands.certs import COLLECTOR_SERVER_NAME
from flowscope.commands.collector import add_stream_limit
from flowscope.http_options import add_http_arguments, http_auth, http_tls
from flowscope.storage_options import add_storage_password_argument, storage_url
from relay import Peer
from relay.core import Relay, RelayOptions
from relay.discovery import PeerWatcher, normalize_address, parse_peer, peers_from_lab
from relay.service import DEFAULT_RELAY_STREAMS, create_server


log = logging.getLogger("relay")

DEFAULT_STORAGE = "chdb:///var/lib/flowscope/db"


def add_tls_arguments(parser: argparse.ArgumentParser) -> None:
    """Hubble Relay's TLS options of both sides: clients -> relay (--tls-relay-server-*, mutual with
    --tls-relay-client-ca-files) and relay -> collectors (--tls-hubble-*)."""
    add_server_arguments(parser.add_argument_group("TLS for clients of the relay"), prefix="tls-relay-server",
                         role=" to clients")
    add_collector_tls_arguments(parser)


def add_collector_tls_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group(
        "TLS towards the node collectors (default: TLS to every collector beyond loopback, plaintext to "
        "loopback ones; any --tls-hubble-* flag: TLS to all)")
    group.add_argument("--tls-hubble-server-ca-files", action="append", default=[], metavar="FILES",
                       help="CA(s) that sign the collectors' certificates (repeatable or comma-separated)")
    group.add_argument("--tls-hubble-client-cert-file", metavar="FILE", help="client certificate for mutual TLS")
    group.add_argument("--tls-hubble-client-key-file", metavar="FILE", help="key of the client certificate")
    group.add_argument("--tls-hubble-server-name", metavar="NAME",
                       help=f"name expected in the collectors' certificates (default {COLLECTOR_SERVER_NAME}; "
                            "a Peer service's own names win)")
    group.add_argument("--disable-client-tls", action="store_true", help="plaintext to every collector")


def collector_tls(args) -> tuple[ClientTLS | None, bool]:
    """(TLS towards the collectors, whether asked for by flags: then also to loopback ones)."""
    flags = (args.tls_hubble_server_ca_files, args.tls_hubble_client_cert_file, args.tls_hubble_client_key_file,
             args.tls_hubble_server_name)
    if args.disable_client_tls:
        if any(flags):
            raise UserError("--disable-client-tls contradicts the --tls-hubble-* flags: give one or the other")
        return None, False
    return ClientTLS(ca=args.tls_hubble_server_ca_files or None, cert=args.tls_hubble_client_cert_file,
                     key=args.tls_hubble_client_key_file,
                     server_name=args.tls_hubble_server_name or COLLECTOR_SERVER_NAME), any(flags)


def peer_adder(relay: Relay, explicit: bool):
    """relay.add_peer, with the default TLS rule: plaintext to a collector on loopback (as a collector
    may serve it there), TLS to every other one."""
    def add(peer: Peer) -> None:
        if peer.tls is not None and not explicit and is_loopback(peer.address):
            peer = dataclasses.replace(peer, tls=None)
        relay.add_peer(peer)
    return add


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--listen-address", default=":4245",
                        help="Observer API address (default :4245); beyond loopback it serves TLS")
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
    add_metrics_arguments(parser, ("--metrics-listen-address", "--metrics-address"), "",
                          "Prometheus metrics of the relay (flowscope_*: nodes, ring, spool), e.g. :9966")
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
    """(store, writer) for a storage URL; (None, None) for 'none'. A ClickHouse server that does not
    answer yet is no reason to exit (and crash-loop through its rollout): the store is then a
    DeferredStore, the writer spools until the server answers, ServerStatus says so."""
    if url == "none":
        return None, None
    import storage
    if storage.parse_url(url).scheme == "chdb":
        store = storage.open_store(url)
        store.migrate()
    else:
        store = storage.DeferredStore(url)
        try:
            store.connect()
        except storage.StorageUnavailable:
            pass  # logged by the store; the writer spools and retries
    return store, storage.FlowWriter(store)


def discover(relay: Relay, args) -> list:
    """Start following every collector named by --peer, --lab-state, --peer-service and
    --peers-from-kubernetes; returns the watchers to stop."""
    tls, explicit = collector_tls(args)
    add = peer_adder(relay, explicit)
    peers = [parse_peer(spec, tls) for spec in args.peer]
    if args.lab_state:
        peers += peers_from_lab(args.lab_state, tls, base_port=args.lab_collector_port)
    for peer in peers:
        add(peer)
    watchers = []
    if args.peer_service:
        service = normalize_address(args.peer_service)
        watchers.append(PeerWatcher(service, add, relay.remove_peer, node_tls=tls,
                                    tls=tls if explicit or not is_loopback(service) else None).start())
    if getattr(args, "peers_from_kubernetes", None):
        from collector.k8s import load_api_client
        from relay.k8s_discovery import KubernetesPeers, parse_pod_selector
        namespace, selector = parse_pod_selector(args.peers_from_kubernetes)
        watchers.append(KubernetesPeers(load_api_client(args.kubeconfig), namespace, selector,
                                        add, relay.remove_peer, port=args.collector_port,
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


def start_metrics(relay: Relay, writer, address: str, exporters=None, tls: TLSConfig | None = None):
    """The relay's health metrics (collector.metrics.HealthMetrics, and the exporters' counters) on
    `address` (HTTPS with `tls`); None if not asked."""
    if not address:
        return None
    from prometheus_client import CollectorRegistry

    from collector.metrics import HealthMetrics, serve
    registry = CollectorRegistry()
    health = HealthMetrics(registry)
    health.watch_status(relay.status)
    if writer is not None:
        health.watch_spool_bytes(lambda: writer.stats().spool_bytes)
        health.watch_storage(relay.storage_available)
        writer.insert_hooks.append(health.observe_storage_write)
    if exporters is not None:
        export_flags.register_metrics(exporters, registry)
    return serve(registry, listen_address(address), tls)[0]


def export_hooks(exporters) -> tuple:
    """The relay hooks that feed the exporters every merged flow."""
    return (exporters.offer,) if exporters is not None else ()


def run(args) -> int:
    export_flags.static_config(args)  # a bad export flag fails before storage opens
    start_http_api = prepare_http_api(args)
    tls = listener_tls(args, args.listen_address, "--tls-relay-server-cert-file")
    metrics_tls = metrics_tls_from_args(args)
    store, writer = open_storage(storage_url(args))
    exporters = export_flags.start_exporters(args)
    relay = Relay(store, writer, RelayOptions(ring_capacity=args.ring_capacity),
                  hooks=export_hooks(exporters)).start()
    watchers: list = []
    server = http = metrics = None
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        server, port = create_server(relay, listen_address(args.listen_address), tls,
                                     max_streams=args.max_flow_streams)
        watchers = discover(relay, args)
        http = start_http_api(store) if start_http_api else None
        metrics = start_metrics(relay, writer, args.metrics_address, exporters, metrics_tls)
        log.info("relay: Observer API on port %d%s, storage %s%s%s", port,
                 describe_tls(tls),
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
            server.stop(grace=1).wait()
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
