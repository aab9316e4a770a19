"""What flowscope knows about the endpoints (pods) on this node and in the cluster.

One interface, `EndpointSource`, answers "who is this IP / this device?"; the lab topology feeds it
today and the Kubernetes API later (collector/k8s). Parsers receive it as a parameter, never as a
global, so tests pass their own. A missing answer is allowed and leaves the flow's fields empty.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Iterable, Protocol

# Labels that differ between replicas of one workload; they never take part in identity or policy.
PER_POD_LABEL_KEYS = frozenset({
    "pod-template-hash", "controller-revision-hash", "statefulset.kubernetes.io/pod-name",
    "pod-template-generation", "batch.kubernetes.io/controller-uid", "controller-uid",
    "batch.kubernetes.io/job-name", "job-name", "apps.kubernetes.io/pod-index",
})


@dataclass(frozen=True)
class Endpoint:
    """One pod (or a host/world stand-in) as flowscope sees it.

    `labels` are the pod's Kubernetes labels as given (no source prefix); `namespace_labels` the labels
    of its namespace. `device` is the host-side interface of the pod (the veth a CNI creates).
    """

    namespace: str
    pod_name: str
    ips: tuple[str, ...]
    labels: dict[str, str] = field(default_factory=dict, hash=False, compare=False)
    namespace_labels: dict[str, str] = field(default_factory=dict, hash=False, compare=False)
    workload_name: str = ""
    workload_kind: str = ""
    service_account: str = "default"
    cluster: str = "default"
    node_name: str = ""
    device: str = ""
    ifindex: int = 0
    endpoint_id: int = 0
    host_network: bool = False

    def hubble_labels(self) -> list[str]:
        """Labels as Hubble prints them: source-prefixed, sorted (k8s:app=frontend, ...)."""
        labels = {f"k8s:{k}={v}" for k, v in self.labels.items()}
        labels.add(f"k8s:io.kubernetes.pod.namespace={self.namespace}")
        labels.add(f"k8s:io.cilium.k8s.policy.serviceaccount={self.service_account}")
        labels.add(f"k8s:io.cilium.k8s.policy.cluster={self.cluster}")
        labels.update(f"k8s:io.cilium.k8s.namespace.labels.{k}={v}"
                      for k, v in self.namespace_labels.items())
        return sorted(labels)

    def identity_labels(self) -> tuple[str, ...]:
        """The label set that decides the numeric identity: Hubble labels minus per-pod ones."""
        return tuple(label for label in self.hubble_labels()
                     if label[4:].split("=", 1)[0] not in PER_POD_LABEL_KEYS)


@dataclass(frozen=True)
class Service:
    namespace: str
    name: str
    cluster_ips: tuple[str, ...]


class EndpointSource(Protocol):
    """Narrow lookup interface injected into parsers and the datapath loader."""

    def endpoint_by_ip(self, ip: str) -> Endpoint | None: ...

    def endpoint_by_device(self, device: str) -> Endpoint | None: ...

    def service_by_ip(self, ip: str) -> Service | None: ...

    def local_endpoints(self) -> list[Endpoint]: ...


class EndpointCache:
    """A thread-safe EndpointSource that its feeders (lab file, Kubernetes watch) replace wholesale
    or update one endpoint at a time. Readers never block writers for long: lookups are dict reads."""

    def __init__(self, node_name: str = "") -> None:
        self.node_name = node_name
        self._lock = threading.Lock()
        self._by_key: dict[tuple[str, str], Endpoint] = {}
        self._by_ip: dict[str, Endpoint] = {}
        self._by_device: dict[str, Endpoint] = {}
        self._services: dict[str, Service] = {}
        self.version = 0  # bumped on every change, so consumers can tell when to refresh

    def replace(self, endpoints: Iterable[Endpoint], services: Iterable[Service] | None = None) -> None:
        """Replace every endpoint (and every service, when `services` is given)."""
        by_key = {(e.namespace, e.pod_name): e for e in endpoints}
        with self._lock:
            self._by_key = by_key
            if services is not None:
                self._services = {ip: s for s in services for ip in s.cluster_ips}
            self._reindex()

    def replace_services(self, services: Iterable[Service]) -> None:
        with self._lock:
            self._services = {ip: s for s in services for ip in s.cluster_ips}

    def upsert(self, endpoint: Endpoint) -> None:
        with self._lock:
            self._by_key[(endpoint.namespace, endpoint.pod_name)] = endpoint
            self._reindex()

    def delete(self, namespace: str, pod_name: str) -> None:
        with self._lock:
            self._by_key.pop((namespace, pod_name), None)
            self._reindex()

    def upsert_service(self, service: Service) -> None:
        with self._lock:
            self._services = {ip: s for ip, s in self._services.items()
                              if (s.namespace, s.name) != (service.namespace, service.name)}
            self._services.update({ip: service for ip in service.cluster_ips})

    def delete_service(self, namespace: str, name: str) -> None:
        with self._lock:
            self._services = {ip: s for ip, s in self._services.items()
                              if (s.namespace, s.name) != (namespace, name)}

    def _reindex(self) -> None:
        self.version += 1
        self._by_ip = {ip: e for e in self._by_key.values() for ip in e.ips}
        self._by_device = {e.device: e for e in self._by_key.values() if e.device}

    def endpoint_by_ip(self, ip: str) -> Endpoint | None:
        return self._by_ip.get(ip)

    def endpoint_by_device(self, device: str) -> Endpoint | None:
        return self._by_device.get(device)

    def service_by_ip(self, ip: str) -> Service | None:
        return self._services.get(ip)

    def all_endpoints(self) -> list[Endpoint]:
        return list(self._by_key.values())

    def local_endpoints(self) -> list[Endpoint]:
        return [e for e in self._by_key.values()
                if e.device and (not self.node_name or e.node_name in ("", self.node_name))]
