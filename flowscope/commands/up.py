"""`flowscope up`: everything for one machine in one process — the node collector (eBPF datapath,
Observer API on :4244, metrics on :9965), the relay (Observer API on :4245, live and history), the
embedded flow store (chdb), the JSON HTTP API, and the UI on :8050 when ui/ is installed.

With a lab of several nodes, this process is the collector of the lab's first node; the relay also
follows the other nodes' collectors at the lab convention (node i on :4244+i), started separately with
`flowscope collector --node-name NODE --listen-address localhost:PORT` (TLS with --tls-cert-file/--tls-key-file
when it listens beyond loopback; then give this command the --tls-hubble-* flags).
"""

from __future__ import annotations

import argparse
import logging
import signal
import socket
import threading

from common.errors import UserError

log = logging.getLogger("flowscope.commands.up")

STOP_GRACE = 0.5  # seconds the Observer APIs' open calls get on stop


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from collector.metrics.server import add_metrics_arguments
    from collector.observer.limits import DEFAULT_MAX_STREAMS
    from common.tls import add_server_arguments
    from flowscope.commands.collector import add_stream_limit
    from flowscope.commands.relay import DEFAULT_STORAGE, add_collector_tls_arguments, add_http_api_arguments
    from flowscope.http_options import add_http_arguments
    from flowscope.storage_options import add_storage_password_argument
    parser.add_argument("--lab-state", help="lab state file (default: the only lab under /run/flowscope/lab)")
    parser.add_argument("--node-name", help="this node's name (default: the lab's first node, else hostname)")
    parser.add_argument("--storage", default=DEFAULT_STORAGE, help=f"flow store URL (default {DEFAULT_STORAGE})")
    add_storage_password_argument(parser)
    parser.add_argument("--collector-address", default="localhost:4244",
                        help="collector Observer API (default localhost:4244; beyond loopback it serves TLS)")
    parser.add_argument("--listen-address", default="localhost:4245",
                        help="relay Observer API (default localhost:4245; beyond loopback it serves TLS)")
    add_metrics_arguments(parser, ("--metrics-server", "--metrics-address"), ":9965",
                          "the collector's Prometheus metrics ('' = none)")
    parser.add_argument("--ui-address", default="127.0.0.1:8050",
                        help="UI address ('' = none; other than loopback needs authentication)")
    parser.add_argument("--unix-socket", default="/var/run/flowscope/hubble.sock",
                        help="collector Observer API on a unix socket ('' = none)")
    parser.add_argument("--identity-state", default="/var/lib/flowscope/identities.json",
                        help="file keeping numeric identities stable across restarts")
    parser.add_argument("--pin-dir", default="/sys/fs/bpf/flowscope", help="bpffs directory of the datapath maps")
    parser.add_argument("--aggregation", default="medium", choices=("none", "medium", "max"),
                        help="collector events per connection (see `flowscope collector --help`)")
    parser.add_argument("--collector", action=argparse.BooleanOptionalAction, default=True,
                        help="run this machine's collector in the process (--no-collector: relay, store and "
                             "UI only, e.g. the embedded-store Deployment on Kubernetes)")
    parser.add_argument("--l7-tls", choices=("on", "off"), default="on",
                        help="parse HTTP/1, HTTP/2 and gRPC inside TLS from pod processes' OpenSSL calls (uprobes)")
    parser.add_argument("--peers-from-kubernetes", metavar="NAMESPACE/SELECTOR",
                        help="also follow the collector pods matching this selector (see `flowscope relay`)")
    parser.add_argument("--kubeconfig", help="kubeconfig for --peers-from-kubernetes (default: in-cluster)")
    add_server_arguments(parser.add_argument_group(
        "TLS of both Observer APIs (collector and relay; one certificate for this machine's names)"))
    add_collector_tls_arguments(parser)
    add_http_api_arguments(parser, default="127.0.0.1:4246")
    add_http_arguments(parser, "ui-", "FLOWSCOPE_UI", "UI")
    add_stream_limit(parser, DEFAULT_MAX_STREAMS, "collector and the relay each")
    from collector.exporter import flags as export_flags
    export_flags.add_arguments(parser)  # exports what the relay merged: every node's flows, once


def find_lab_state(path: str | None) -> str | None:
    """The lab to observe: the given file, else the only lab that is up (None when there is none)."""
    if path:
        return path
    from lab.state import state_files
    files = state_files()
    if len(files) > 1:
        raise UserError(f"several labs are up ({', '.join(files)}): choose one with --lab-state")
    return files[0] if files else None


def lab_nodes(state_path: str | None) -> list[str]:
    if not state_path:
        return []
    from lab.state import load_state
    return list(load_state(state_path).nodes)


def prepare_ui(args):
    """Checks the UI's options (fail fast, before the store opens) and returns what starts the Dash UI
    over a store in a daemon thread (ui.app.start: loopback unless authenticated); None if not asked."""
    if not args.ui_address:
        return None
    from flowscope.http_options import http_auth, http_tls
    from ui.app import start
    from ui.auth import check_address, parse_address
    auth, tls = http_auth(args, "ui-", "FLOWSCOPE_UI"), http_tls(args, "ui-")
    check_address(parse_address(args.ui_address, "--ui-address")[0], auth, False, flag="--ui-address",
                  expected="--ui-auth-token-file, $FLOWSCOPE_UI_TOKEN or --ui-basic-auth-file")
    return lambda store: start(store, args.ui_address, auth=auth, tls=tls, flag="--ui-address",
                               pin_dir=args.pin_dir)


def follow_kubernetes_collectors(add_peer, remove_peer, args, tls):
    """A KubernetesPeers watcher feeding the relay, or None without --peers-from-kubernetes."""
    if not args.peers_from_kubernetes:
        return None
    from collector.k8s import load_api_client
    from relay.k8s_discovery import KubernetesPeers, parse_pod_selector
    namespace, selector = parse_pod_selector(args.peers_from_kubernetes)
    return KubernetesPeers(load_api_client(args.kubeconfig), namespace, selector, add_peer, remove_peer,
                           tls=tls).start()


def start_collector(args, node: str, state_path: str | None, tls, metrics_tls):
    from collector.agent import Collector, CollectorConfig
    from flowscope.commands.collector import policy_options
    from collector.datapath import DatapathConfig
    from collector.datapath.loader import check_kernel_headers, check_privileges, prepare_pin_dir

    check_privileges()
    check_kernel_headers()
    prepare_pin_dir(args.pin_dir)
    config = CollectorConfig(node_name=node, lab_state=state_path, listen_address=args.collector_address,
                             tls=tls, metrics_tls=metrics_tls,
                             unix_socket=args.unix_socket or None, identity_state=args.identity_state,
                             datapath=DatapathConfig(aggregation=args.aggregation, pin_dir=args.pin_dir),
                             metrics_address=args.metrics_address or None, kernel_drops=True,
                             max_streams=args.max_flow_streams, l7_tls=args.l7_tls == "on")
    collector = Collector(config, **policy_options(args.pin_dir, config.identity_state))
    collector.start()
    return collector


def run(args) -> int:
    from collector.exporter import flags as export_flags
    from relay import Peer, Relay
    from collector.metrics.server import metrics_tls_from_args
    from collector.observer.server import unix_target
    from common.tls import describe as describe_tls, listener_tls
    from flowscope.commands.relay import (collector_tls, export_hooks, listen_address, open_storage, peer_adder,
                                          prepare_http_api)
    from flowscope.storage_options import storage_url
    from relay.discovery import LAB_COLLECTOR_BASE_PORT
    from relay.service import create_server

    tls = listener_tls(args, args.listen_address)
    if args.collector:
        listener_tls(args, args.collector_address)
    metrics_tls = metrics_tls_from_args(args)
    client_tls, explicit = collector_tls(args)
    if args.collector and tls is not None and not args.unix_socket and not explicit:
        raise UserError("the relay reaches this machine's collector through --unix-socket; without one it "
                        "needs the --tls-hubble-* flags to reach it over TLS")
    state_path = find_lab_state(args.lab_state)
    nodes = lab_nodes(state_path)
    node = args.node_name or (nodes[0] if nodes else socket.gethostname())
    export_flags.static_config(args)  # a bad export flag fails before anything starts
    start_http_api = prepare_http_api(args)
    start_ui = prepare_ui(args)
    store, writer = open_storage(storage_url(args))
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    collector = relay = server = http = ui = watcher = exporters = None
    try:
        if args.collector:
            collector = start_collector(args, node, state_path, tls, metrics_tls)
        exporters = export_flags.start_exporters(args)
        if exporters is not None and collector is not None:
            export_flags.register_metrics(exporters, getattr(collector, "registry", None))
        relay = Relay(store, writer, hooks=export_hooks(exporters)).start()
        server, port = create_server(relay, listen_address(args.listen_address), tls,
                                     max_streams=args.max_flow_streams)
        add = peer_adder(relay, explicit)
        if collector is not None:
            # Its own collector through the unix socket (plaintext, root's file) when there is one.
            add(Peer(node, unix_target(args.unix_socket)) if args.unix_socket
                else Peer(node, f"localhost:{collector.grpc_port}", client_tls))
            for i, other in enumerate(nodes):
                if other != node:
                    add(Peer(other, f"localhost:{LAB_COLLECTOR_BASE_PORT + i}", client_tls))
        watcher = follow_kubernetes_collectors(add, relay.remove_peer, args, client_tls)
        http = start_http_api(store) if start_http_api else None
        ui = start_ui(store) if start_ui else None
        log.info("flowscope up: node %s%s; collector on port %s, relay Observer API on port %d%s, storage %s%s%s",
                 node, f" (lab {state_path})" if state_path else "",
                 collector.grpc_port if collector else "-", port,
                 describe_tls(tls),
                 store.url.redacted(), f", HTTP API on port {http.port}" if http else "",
                 f", UI {ui.url}" if ui else "")
        stop.wait()
    except KeyboardInterrupt:
        pass
    finally:
        if watcher is not None:
            watcher.stop()
        # Both Observer APIs stop at once: follow streams never end by themselves, so each stop takes its
        # whole grace, and one after the other they made the process overrun its supervisor's patience.
        servers = [s for s in (server, collector.server if collector is not None else None) if s is not None]
        for stopped in [s.stop(grace=STOP_GRACE) for s in servers]:
            stopped.wait()
        if relay is not None:
            relay.stop()
        if exporters is not None:
            exporters.stop()
        if collector is not None:
            collector.stop(grace_s=0)
        if http is not None:
            http.stop()
        if ui is not None:
            ui.stop()
        if writer is not None:
            writer.close()
    return 0
