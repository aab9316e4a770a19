"""The node collector: endpoint source -> eBPF datapath -> L7 parsers -> Observer (ring, hooks) -> gRPC.

    collector = Collector(CollectorConfig(node_name="node-1"))
    collector.start()          # loads and attaches the datapath, serves :4244 and the unix socket
    ...
    collector.stop()

`flowscope collector` runs exactly this; `flowscope up` embeds it (and adds hooks to collector.observer).
"""

from __future__ import annotations

import gc
import logging
import os
import pathlib
import socket
import threading
from dataclasses import dataclass, field, replace
from typing import Callable

from collector.datapath import Datapath, DatapathConfig, Decoder, Enricher
from collector.datapath.owner import PinDirOwner
from common.endpoints import Endpoint, EndpointCache
from collector.identity import IdentityAllocator
from collector.l7 import FqdnCache, L7Config, L7Dispatcher
from collector.observer import DEFAULT_MAX_STREAMS, Observer, create_server
from common.errors import UserError
from common.tls import TLSConfig, describe as describe_tls
from proto.flow import flow_pb2

log = logging.getLogger(__name__)

DEFAULT_UNIX_SOCKET = "/var/run/flowscope/hubble.sock"
DEFAULT_LISTEN_ADDRESS = ":4244"
DEFAULT_IDENTITY_STATE = "/var/lib/flowscope/identities.json"
# Python's cyclic garbage collector holds the GIL while it walks every object it tracks; in a collector
# under load its full collections (0.08-0.8 s, docs/benchmarks.md) were the longest stretches in which no
# perf ring was read. Young collections ~7x rarer, full ones only after 10x as many survivors.
GC_THRESHOLDS = (5000, 10, 100)


@dataclass(frozen=True)
class CollectorConfig:
    node_name: str = field(default_factory=socket.gethostname)
    lab_state: str | None = None  # one lab's state file; None = every lab in lab.DEFAULT_STATE_DIR
    listen_address: str | None = DEFAULT_LISTEN_ADDRESS  # None: no TCP listener
    tls: TLSConfig | None = None  # TLS (mutual with client CAs) on the TCP listener; the unix socket is plaintext
    unix_socket: str | None = DEFAULT_UNIX_SOCKET
    ring_capacity: int = 65536
    datapath: DatapathConfig = field(default_factory=DatapathConfig)
    metrics_address: str | None = None  # e.g. ":9965"
    metrics_tls: TLSConfig | None = None  # HTTPS for /metrics
    metrics: tuple[str, ...] | None = None  # FlowMetrics config; None = its defaults
    identity_state: str | None = DEFAULT_IDENTITY_STATE
    endpoint_poll_s: float = 1.0
    # True: a stop detaches the programs unless policies are loaded (enforcement never fails open on a
    # stop or a rollout); False: they stay attached even without policies.
    detach_on_stop: bool = True
    endpoint_source: str = "lab"  # "lab" (state files) or "kubernetes" (the API server)
    kubeconfig: str | None = None  # with endpoint_source="kubernetes"; None = in-cluster or ~/.kube/config
    kernel_drops: bool = False  # also report the kernel's own drops (skb:kfree_skb); ~1 s to compile
    max_streams: int = DEFAULT_MAX_STREAMS  # concurrent Observer streams; RESOURCE_EXHAUSTED beyond
    l7_tls: bool = False  # also parse the plaintext of pod processes' OpenSSL calls (uprobes); ~1 s to compile


class LabEndpointFeeder:
    """Keeps an EndpointCache equal to the lab state file(s), re-reading them when they change."""

    def __init__(self, cache: EndpointCache, path: str | None) -> None:
        self.cache = cache
        self.path = path
        self._signature: tuple = ()
        self._watch_lock = None

    def watch(self) -> None:
        """Tells `lab up` that these labs are watched (it then refuses to recreate them under us)."""
        import lab
        self._watch_lock = lab.watch_lock(os.path.dirname(self.path) if self.path else None)

    def close(self) -> None:
        if self._watch_lock is not None:
            self._watch_lock.close()
            self._watch_lock = None

    def refresh(self) -> None:
        import lab  # the lab is the endpoint source on one machine; Kubernetes feeds the cache elsewhere

        files = [pathlib.Path(self.path)] if self.path else sorted(pathlib.Path(lab.DEFAULT_STATE_DIR).glob("*.json"))
        signature = tuple((str(p), p.stat().st_mtime_ns) for p in files if p.exists())
        if signature == self._signature:
            return
        self._signature = signature
        endpoints: list[Endpoint] = []
        if signature:
            try:
                endpoints = lab.endpoints_from_state(self.path)
            except Exception as err:  # a half-written file: try again on the next poll
                log.warning("reading lab state: %s", err)
                self._signature = ()
                return
        self.cache.replace(endpoints)
        log.info("endpoints: %d pods (%d on node %s)", len(endpoints), len(self.cache.local_endpoints()),
                 self.cache.node_name or "*")


class Collector:
    """One node's collector. `endpoints` defaults to a cache fed from the lab state; `policy_maps` is the
    enforcer's PolicyMaps (its cflags compile enforcement in), `policy_names` its PolicyNames, and
    `policy_agent` its PolicyAgent, which keeps the maps in step with pods and DNS answers."""

    def __init__(self, config: CollectorConfig, endpoints: EndpointCache | None = None,
                 observer: Observer | None = None, policy_maps=None, policy_names=None,
                 policy_agent=None, l7_config: L7Config | None = None) -> None:
        self.config = config
        self.endpoints = endpoints if endpoints is not None else EndpointCache(config.node_name)
        self._feeder = None
        self._kubernetes = None
        if endpoints is None and config.endpoint_source == "lab":
            self._feeder = LabEndpointFeeder(self.endpoints, config.lab_state)
        elif endpoints is None and config.endpoint_source != "kubernetes":
            raise UserError(f"endpoint source {config.endpoint_source!r}: expected 'lab' or 'kubernetes'")
        self.observer = observer if observer is not None else Observer(config.node_name, config.ring_capacity)
        self.fqdn = FqdnCache()
        self.l7 = L7Dispatcher(l7_config or _l7_config(config.datapath), fqdn=self.fqdn,
                               endpoint_of=self._endpoint_of)
        dp_config = config.datapath
        if policy_maps is not None:
            dp_config = _with_cflags(dp_config, policy_maps.cflags())
        self.policy_maps = policy_maps
        self.identities = IdentityAllocator(config.identity_state)
        self.decoder = Decoder(Enricher(self.endpoints, self.identities), config.node_name, l7=self.l7,
                               names=self.fqdn, policies=policy_names)
        self.datapath = Datapath(dp_config, self.endpoints, self.decoder, self.observer.publish_many,
                                 self._publish_lost)
        self.kernel_drops = None
        self.tls = None
        self.server = None
        self.grpc_port = 0
        self.metrics_server = None
        self.flow_metrics = None
        self.lost_hooks: list[Callable] = []  # called with each flow.LostEvent (metrics)
        # called with every endpoint when the endpoint source changed (policy maps, metric expiry)
        self.endpoint_hooks: list[Callable[[list[Endpoint]], object]] = []
        if policy_agent is not None:
            self.observer.hooks.append(policy_agent.observe)
            self.endpoint_hooks.append(policy_agent.on_endpoints)
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._endpoints_seen = -1
        self._owner = PinDirOwner(config.datapath.pin_dir)

    def start(self) -> None:
        if self._feeder is not None:
            if self.config.lab_state and not os.path.exists(self.config.lab_state):
                raise UserError(f"lab state {self.config.lab_state}: file not found "
                                "(run `flowscope lab up -f deploy/lab/<topology>.yaml` first)")
            self._feeder.refresh()
            self._feeder.watch()
        if self.config.endpoint_source == "kubernetes" and self._feeder is None:
            self._start_kubernetes()
        try:
            self._start_metrics()
            self._run_endpoint_hooks()  # before the datapath: new pods are enforced from their first packet
            self._owner.hold()
            self.datapath.start()
            if self.config.kernel_drops:
                self._start_kernel_drops()
            if self.config.l7_tls:
                self._start_tls()
            self._spawn(self._poll_endpoints, "flowscope-endpoints")
        except BaseException:
            self._stop.set()  # the endpoint poller and metrics server must not outlive a failed start
            self._owner.release()
            if self.metrics_server is not None:
                self.metrics_server.shutdown()
            if self._kubernetes is not None:
                self._kubernetes.stop()
            raise
        if self.config.unix_socket:
            path = self.config.unix_socket.removeprefix("unix://").removeprefix("unix:")
            os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
        self.server, self.grpc_port = create_server(self.observer, _grpc_address(self.config.listen_address),
                                                    unix_socket=self.config.unix_socket,
                                                    max_streams=self.config.max_streams, tls=self.config.tls)
        log.info("collector %s: %d pod devices attached, Observer API on %s%s%s", self.config.node_name,
                 len(self.datapath.attached), self.config.listen_address or "-",
                 describe_tls(self.config.tls),
                 f" and unix://{self.config.unix_socket}" if self.config.unix_socket else "")

    def request_stop(self) -> None:
        """Safe from a signal handler: wait() returns, the caller then calls stop()."""
        self._stop.set()

    def stop(self, grace_s: float = 0.5) -> None:
        self._stop.set()
        if self.server is not None:
            self.server.stop(grace_s).wait()
        enforcing = self.enforced_endpoints()
        if enforcing and self.config.detach_on_stop:
            log.info("keeping %d pod devices attached: %d endpoints under policy in %s (detach with "
                     "`flowscope policy remove --all` or `flowscope collector --uninstall`)",
                     len(self.datapath.attached), enforcing, self.config.datapath.pin_dir)
        self.datapath.stop(detach=self.config.detach_on_stop and not enforcing)
        self._owner.release()
        for thread in self._threads:
            thread.join(timeout=2)
        if self.kernel_drops is not None:
            self.kernel_drops.stop()
        if self.tls is not None:
            self.tls.stop()
        if self._kubernetes is not None:
            self._kubernetes.stop()
        if self.metrics_server is not None:
            self.metrics_server.shutdown()
        if self._feeder is not None:
            self._feeder.close()

    def enforced_endpoints(self) -> int:
        """Endpoints the policy maps enforce or audit now (the kernel's view, whoever wrote them)."""
        if self.policy_maps is None:
            return 0
        try:
            return len(self.policy_maps.endpoints.keys())
        except Exception:  # unreadable maps: assume policy, keep enforcing
            log.exception("reading the policy endpoints map")
            return 1

    def wait(self, timeout: float | None = None) -> bool:
        """Blocks until stop() (from another thread or a signal handler); True if stopped."""
        return self._stop.wait(timeout)

    def _spawn(self, target: Callable[[], None], name: str) -> None:
        thread = threading.Thread(target=target, name=name, daemon=True)
        thread.start()
        self._threads.append(thread)

    def _poll_endpoints(self) -> None:
        """Re-reads the lab state; on any endpoint change, tells everyone who keeps per-pod state."""
        while not self._stop.wait(self.config.endpoint_poll_s):
            if self._feeder is not None:
                self._feeder.refresh()
            if self.endpoints.version != self._endpoints_seen:
                self._run_endpoint_hooks()

    def _run_endpoint_hooks(self) -> None:
        self._endpoints_seen = self.endpoints.version
        endpoints = self.endpoints.all_endpoints()
        if self.kernel_drops is not None:
            self.kernel_drops.invalidate()
        if self.flow_metrics is not None:
            self.flow_metrics.sync_endpoints(endpoints)
        for hook in self.endpoint_hooks:
            try:
                hook(endpoints)
            except Exception:  # a consumer's failure must not stop endpoint tracking
                log.exception("endpoint hook %r failed", hook)

    def _start_kubernetes(self) -> None:
        from collector.k8s import KubernetesEndpointSource, load_api_client

        self._kubernetes = KubernetesEndpointSource(load_api_client(self.config.kubeconfig), self.endpoints,
                                                    node_name=self.config.node_name)
        self._kubernetes.start()
        if not self._kubernetes.wait_synced(30):
            log.warning("Kubernetes API not synced after 30 s; serving flows with the labels known so far")

    def _start_kernel_drops(self) -> None:
        from collector.kernel_drops import KernelDrops

        self.kernel_drops = KernelDrops(self.observer.publish, self.endpoints, self.identities,
                                        self.config.node_name, enricher=self.decoder.enricher)
        self.kernel_drops.start()
        self._spawn(self._poll_kernel_drops, "flowscope-kernel-drops")

    def _start_tls(self) -> None:
        """TLS plaintext through its own L7 dispatcher and decoder (its own thread): the TC path's
        dispatcher must never see these bytes as packets of the same connection."""
        from collector.tls import TlsCapture, TlsCaptureConfig, TlsCaptureError, TlsProgramConfig

        dp = self.config.datapath
        dispatcher = L7Dispatcher(self.l7.config, fqdn=self.fqdn, endpoint_of=self._endpoint_of, tls=True)
        decoder = Decoder(Enricher(self.endpoints, self.identities), self.config.node_name, l7=dispatcher,
                          names=self.fqdn, policies=self.decoder.policies, tls=True)
        program = TlsProgramConfig(dp.payload_bytes, dp.stream_segment_bytes, dp.l7_budget)
        capture = TlsCapture(TlsCaptureConfig(program=program, sync_interval_s=dp.sync_interval_s),
                             self.endpoints, decoder, self.observer.publish_many)
        try:
            capture.start()
        except TlsCaptureError as err:
            log.warning("%s", err)
            return
        self.tls = capture
        log.info("TLS capture on: %d libssl files probed", capture.libraries)

    def _tls_not_visible(self) -> dict[str, int]:
        return dict(self.tls.not_visible) if self.tls is not None else {}

    def _poll_kernel_drops(self) -> None:
        while not self._stop.is_set():
            self.kernel_drops.poll(100)

    def _publish_lost(self, lost) -> None:
        self.observer.publish_lost(lost)
        for hook in self.lost_hooks:
            hook(lost)

    def _endpoint_of(self, ip: str) -> tuple[str, str] | None:
        ep = self.endpoints.endpoint_by_ip(ip)
        return (ep.namespace, ep.pod_name) if ep else None

    def _start_metrics(self) -> None:
        if not self.config.metrics_address:
            return
        from prometheus_client import CollectorRegistry

        from collector.metrics import DEFAULT_METRICS, FlowMetrics, HealthMetrics, serve

        self.registry = CollectorRegistry()
        self.flow_metrics = FlowMetrics(list(self.config.metrics or DEFAULT_METRICS), self.registry)
        health = HealthMetrics(self.registry)
        health.watch_status(self.observer.status)
        health.watch_l7_budget(lambda: dict(self.l7.stats.budget_exhausted))
        health.watch_tls_not_visible(self._tls_not_visible)
        self.observer.encoded_hooks.extend([self.flow_metrics.observe, health.observe])
        self.lost_hooks.extend([self.flow_metrics.observe_lost,
                                lambda lost: health.count_lost(flow_pb2.LostEventSource.Name(lost.source),
                                                                lost.num_events_lost)])
        self.metrics_server, _port = serve(self.registry, self.config.metrics_address,
                                           self.config.metrics_tls)


def _grpc_address(address: str | None) -> str | None:
    if address and address.startswith(":"):
        return "0.0.0.0" + address
    return address


def _l7_config(dp: DatapathConfig) -> L7Config:
    return L7Config(http_ports=frozenset(dp.l7_ports), kafka_ports=frozenset(dp.stream_ports),
                    stream_budget=dp.l7_budget)


def _with_cflags(config: DatapathConfig, extra: list[str]) -> DatapathConfig:
    return replace(config, extra_cflags=(*config.extra_cflags, *extra))


def settle_gc() -> tuple[int, tuple[int, int, int]]:
    """Once the collector has started (imports, compiled BPF, templates): what exists now lives as long as
    the process, so it is frozen out of every later collection; then GC_THRESHOLDS. Returns the objects
    frozen and the thresholds, as the interpreter reports them (and logs them)."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)
    frozen, thresholds = gc.get_freeze_count(), gc.get_threshold()
    log.info("garbage collection: %d objects frozen, thresholds %s", frozen, "/".join(map(str, thresholds)))
    return frozen, thresholds


def run_collector(config: CollectorConfig, until: Callable[[], bool] | None = None, **kwargs) -> Collector:
    """Start a collector and block until `until()` is true or stop() is called; returns it stopped."""
    collector = Collector(config, **kwargs)
    collector.start()
    try:
        while not collector.wait(0.5):
            if until is not None and until():
                break
    finally:
        collector.stop()
    return collector
