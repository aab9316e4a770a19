"""`flowscope collector`: the node collector (root): eBPF datapath, Observer API on :4244 and a unix socket."""

from __future__ import annotations

import argparse
import signal
import socket
import sys

from collector.datapath import DEFAULT_PIN_DIR, DatapathConfig, program_text
from collector.datapath.events import AGGREGATION_LEVELS
from collector.exporter import flags as export_flags
from collector.observer.limits import DEFAULT_MAX_STREAMS
from collector.metrics.server import add_metrics_arguments, metrics_tls_from_args
from common.errors import UserError
from common.tls import add_server_arguments, listener_tls
from flowscope.commands.arguments import positive


def _ports(text: str) -> tuple[int, ...]:
    try:
        ports = tuple(int(p) for p in text.split(",") if p.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: expected comma-separated port numbers, e.g. 80,8080")
    if any(not 0 < p < 65536 for p in ports):
        raise argparse.ArgumentTypeError(f"{text!r}: ports must be 1..65535")
    return ports


def add_stream_limit(parser: argparse.ArgumentParser, default: int, server: str) -> None:
    parser.add_argument("--max-flow-streams", type=positive(int, "streams"), default=default, metavar="N",
                        help=f"concurrent GetFlows (and event) streams the {server} serves; more are "
                             f"refused with RESOURCE_EXHAUSTED (default {default})")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--node-name", default=socket.gethostname(), help="this node's name (default: hostname)")
    parser.add_argument("--lab-state", help="lab state file (default: every lab under /run/flowscope/lab)")
    parser.add_argument("--listen-address", default=":4244",
                        help="Observer gRPC address ('' = none); beyond loopback it serves TLS")
    add_server_arguments(parser.add_argument_group("TLS of the Observer API (Hubble's flags)"))
    parser.add_argument("--unix-socket", default="/var/run/flowscope/hubble.sock",
                        help="Observer API on a unix socket ('' = none)")
    parser.add_argument("--aggregation", choices=list(AGGREGATION_LEVELS), default="medium",
                        help="events per connection: none = every packet, medium = start, reply, "
                             "TCP flag changes and periodic updates, max = start and end")
    parser.add_argument("--update-interval", type=float, default=10.0,
                        help="seconds between counter updates of long-lived connections (medium)")
    parser.add_argument("--ring-capacity", type=int, default=65536, help="flows kept in memory")
    parser.add_argument("--perf-pages", type=int, default=DatapathConfig.perf_pages,
                        help="pages of the kernel's event ring per CPU, a power of two (4 KiB each): what the "
                             "collector can fall behind by before the kernel drops events")
    parser.add_argument("--l7-ports", type=_ports, default=(80, 8080, 8000),
                        help="TCP ports whose payload prefix is parsed as L7 (DNS 53 always)")
    parser.add_argument("--payload-bytes", type=int, default=512, help="L7 prefix bytes per data segment")
    parser.add_argument("--l7-stream-budget", type=int, default=1 << 20,
                        help="bytes captured per HTTP/2 or Kafka connection (they are parsed whole); "
                             "a connection past it is counted and logged, its later requests not seen")
    parser.add_argument("--pin-dir", default=DEFAULT_PIN_DIR,
                        help="bpffs directory for the maps that survive a restart")
    add_metrics_arguments(parser, ("--metrics-server", "--metrics-address"), "",
                          "Prometheus metrics address, e.g. :9965 ('' = none)")
    parser.add_argument("--metrics", default="",
                        help="metrics to export, Hubble's syntax: space-separated specs such as "
                             "'flow drop:sourceContext=namespace httpV2:labelsContext=source_namespace' "
                             "(default: flowscope's set)")
    parser.add_argument("--endpoints", choices=("lab", "kubernetes"), default="lab",
                        help="where pod labels come from: the lab state (default) or the Kubernetes API")
    parser.add_argument("--kubeconfig", help="with --endpoints kubernetes (default: in-cluster, else ~/.kube/config)")
    parser.add_argument("--policies-from-kubernetes", action=argparse.BooleanOptionalAction, default=True,
                        help="with --endpoints kubernetes: enforce the cluster's NetworkPolicies (and "
                             "CiliumNetworkPolicies when their CRD is installed)")
    parser.add_argument("--kernel-drops", action=argparse.BooleanOptionalAction, default=True,
                        help="report the kernel's own packet drops (skb:kfree_skb) as DROPPED flows")
    parser.add_argument("--l7-tls", choices=("on", "off"), default="on",
                        help="parse HTTP/1, HTTP/2 and gRPC inside TLS from pod processes' OpenSSL calls "
                             "(uprobes; default on, logged off with the reason where uprobes cannot run)")
    parser.add_argument("--keep-attached", action="store_true",
                        help="leave the programs attached on exit even without policies (with policies "
                             "loaded they always stay: enforcement survives stops and rollouts)")
    parser.add_argument("--uninstall", action="store_true",
                        help="take the datapath out of the kernel: detach the programs a stopped collector "
                             "left on the pod devices, unpin the maps of --pin-dir and forget its applied "
                             "policies (enforcement ends; refused while a collector runs)")
    add_stream_limit(parser, DEFAULT_MAX_STREAMS, "Observer API")
    parser.add_argument("--dump-bpf", action="store_true", help=argparse.SUPPRESS)
    export_flags.add_arguments(parser)


def run(args: argparse.Namespace) -> int:
    if args.ring_capacity <= 0:
        raise UserError(f"--ring-capacity {args.ring_capacity}: expected a positive number of flows")
    if args.l7_stream_budget <= 0:
        raise UserError(f"--l7-stream-budget {args.l7_stream_budget}: expected a positive number of bytes")
    dp = DatapathConfig(aggregation=args.aggregation, update_interval_s=args.update_interval,
                        payload_bytes=args.payload_bytes, l7_ports=args.l7_ports, pin_dir=args.pin_dir,
                        l7_budget=args.l7_stream_budget, perf_pages=args.perf_pages)
    if args.dump_bpf:
        print(program_text(dp))
        return 0
    if args.uninstall:
        return uninstall(args.pin_dir)
    tls = listener_tls(args, args.listen_address)  # a bad certificate is named before the datapath loads
    metrics_tls = metrics_tls_from_args(args)
    from collector.agent import Collector, CollectorConfig, settle_gc
    from collector.datapath.loader import check_kernel_headers, check_privileges, prepare_pin_dir

    check_privileges()
    check_kernel_headers()
    prepare_pin_dir(args.pin_dir)
    export_flags.static_config(args)  # a bad export flag fails before the datapath loads

    config = CollectorConfig(node_name=args.node_name, lab_state=args.lab_state,
                             listen_address=args.listen_address or None, tls=tls, unix_socket=args.unix_socket or None,
                             ring_capacity=args.ring_capacity, datapath=dp,
                             metrics_address=args.metrics_address or None, metrics_tls=metrics_tls,
                             metrics=tuple(args.metrics.split()) or None, detach_on_stop=not args.keep_attached,
                             endpoint_source=args.endpoints, kubeconfig=args.kubeconfig,
                             kernel_drops=args.kernel_drops, max_streams=args.max_flow_streams,
                             l7_tls=args.l7_tls == "on")
    collector = Collector(config, **policy_options(args.pin_dir, config.identity_state))
    signal.signal(signal.SIGTERM, lambda *_: collector.request_stop())
    exporters = export_flags.start_exporters(args)
    if exporters is not None:
        collector.observer.hooks.append(exporters.observe)
    try:
        collector.start()
    except BaseException:
        if exporters is not None:
            exporters.stop()
        raise
    if exporters is not None:
        export_flags.register_metrics(exporters, getattr(collector, "registry", None))
    settle_gc()  # started: nothing built so far needs collecting again
    policies = None
    try:
        if args.endpoints == "kubernetes" and args.policies_from_kubernetes:
            policies = kubernetes_policies(args, collector)
        collector.wait()
    except KeyboardInterrupt:
        pass
    finally:
        if policies is not None:
            policies.stop()
        collector.stop()
        if exporters is not None:
            exporters.stop()
    stats = collector.datapath.stats
    print(f"flowscope collector: {stats.events} events, {stats.flows} flows, {stats.lost} lost", file=sys.stderr)
    return 0


def uninstall(pin_dir: str) -> int:
    from collector.datapath.loader import check_privileges
    from collector.datapath.teardown import uninstall as teardown

    check_privileges()
    done = teardown(pin_dir)
    try:
        from enforcer.datapath import forget
    except ImportError:
        pass
    else:
        forget(pin_dir)
    devices = ", ".join(f"{name} ({count})" for name, count in sorted(done.detached.items())) or "none"
    print(f"uninstalled {pin_dir}: filters detached from {devices}; "
          f"{len(done.unpinned)} maps unpinned ({', '.join(done.unpinned) or '-'})")
    return 0


def kubernetes_policies(args: argparse.Namespace, collector):
    """The cluster's policy objects, applied to this node's datapath as they change (None without the
    enforcer)."""
    try:
        from enforcer.apply import local_addresses
        from enforcer.k8s_policies import KubernetesPolicyApplier, KubernetesPolicySource
    except ImportError:
        return None
    from collector.k8s import load_api_client

    applier = KubernetesPolicyApplier(args.pin_dir, collector.endpoints.all_endpoints,
                                      collector.config.identity_state, local_addresses())
    source = KubernetesPolicySource(load_api_client(args.kubeconfig), applier)
    source.start()
    return source


def policy_options(pin_dir: str, identity_state: str | None = None) -> dict:
    """The enforcer's maps, names and agent, when the enforcer is installed: the datapath then enforces
    policy, names it in drops, and keeps the maps in step with new pods and DNS answers (toFQDNs)."""
    try:
        from enforcer.apply import local_addresses
        from enforcer.datapath import PolicyMaps, PolicyNames
        from enforcer.runtime import PolicyAgent
    except ImportError:
        return {}
    return {"policy_maps": PolicyMaps.open(pin_dir), "policy_names": PolicyNames(pin_dir),
            "policy_agent": PolicyAgent(pin_dir, identity_state, local_addresses())}
