"""Find node collectors in Kubernetes: the collector DaemonSet's running pods, watched with the same
informer as the collector's endpoint source. Each pod becomes a Peer named after its node."""

from __future__ import annotations

import functools
import logging
import threading
from typing import Callable

from kubernetes import client

from collector.k8s.informer import Informer, KubeObject
from common.tls import ClientTLS
from common.errors import UserError
from relay.node import Peer

log = logging.getLogger(__name__)


class PodSelectorError(UserError):
    """A --peers-from-kubernetes value that is not NAMESPACE/LABEL_SELECTOR."""


def parse_pod_selector(spec: str) -> tuple[str, str]:
    namespace, sep, selector = spec.partition("/")
    if not sep or not namespace or not selector:
        raise PodSelectorError(f"--peers-from-kubernetes {spec!r}: expected NAMESPACE/LABEL_SELECTOR, "
                               "e.g. flowscope/app.kubernetes.io/name=flowscope-collector")
    return namespace, selector


def peer_of_pod(pod: KubeObject, port: int, tls: ClientTLS | None = None) -> Peer | None:
    """The collector a pod runs, or None while it is not running or has no IP yet."""
    status, spec = pod.get("status", {}), pod.get("spec", {})
    if status.get("phase") != "Running" or not status.get("podIP"):
        return None
    name = spec.get("nodeName") or pod["metadata"]["name"]
    ip = status["podIP"]
    host = f"[{ip}]" if ":" in ip else ip
    return Peer(name=name, address=f"{host}:{port}", tls=tls)


class KubernetesPeers:
    """Calls on_add(Peer) / on_remove(name) as collector pods come, move and go."""

    def __init__(self, api_client: client.ApiClient, namespace: str, selector: str,
                 on_add: Callable[[Peer], None], on_remove: Callable[[str], None], port: int = 4244,
                 tls: ClientTLS | None = None, watch_timeout_seconds: int = 300) -> None:
        self._on_add, self._on_remove = on_add, on_remove
        self._port, self._tls = port, tls
        self._peers: dict[str, Peer] = {}  # pod name -> peer
        list_pods = functools.partial(client.CoreV1Api(api_client).list_namespaced_pod, namespace,
                                      label_selector=selector)
        self.informer = Informer(f"pods {namespace}/{selector}", list_pods, self._replace, self._event,
                                 watch_timeout_seconds)
        self._stop = threading.Event()

    def start(self) -> "KubernetesPeers":
        threading.Thread(target=self.informer.run, args=(self._stop,), daemon=True,
                         name="relay-k8s-peers").start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self.informer.stop()

    def _replace(self, pods: list[KubeObject]) -> None:
        seen = {p["metadata"]["name"] for p in pods}
        for name in [n for n in self._peers if n not in seen]:
            self._on_remove(self._peers.pop(name).name)
        for pod in pods:
            self._event("MODIFIED", pod)

    def _event(self, kind: str, pod: KubeObject) -> None:
        pod_name = pod["metadata"]["name"]
        peer = None if kind == "DELETED" else peer_of_pod(pod, self._port, self._tls)
        old = self._peers.pop(pod_name, None)
        if old is not None and old != peer:
            self._on_remove(old.name)
        if peer is not None:
            self._peers[pod_name] = peer
            if old != peer:
                log.info("collector %s at %s", peer.name, peer.address)
                self._on_add(peer)
