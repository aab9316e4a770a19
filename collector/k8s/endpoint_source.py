"""Feeds an EndpointCache from the Kubernetes API: pods (with their namespace's labels, owning workload
and, for pods on this node, host-side device), services (cluster IPs), EndpointSlices (which service a
backend IP belongs to) and nodes (labels).

One informer per resource; each keeps the raw objects it saw, and the cache is rebuilt from them for
exactly the pods an event touches (a namespace relabel touches that namespace's pods).
"""

from __future__ import annotations

import logging
import os
import threading
from typing import Callable

from kubernetes import client, config
from kubernetes.config.config_exception import ConfigException

from common.endpoints import Endpoint, EndpointCache, Service
from collector.k8s.devices import device_for_ip
from collector.k8s.informer import Informer, InformerGroup, KubeObject
from collector.k8s.workloads import owning_workload
from common.errors import UserError

log = logging.getLogger(__name__)

DeviceLookup = Callable[[str], tuple[str, int] | None]


class KubernetesError(UserError):
    """The Kubernetes API cannot be used (bad kubeconfig, no permission)."""


def load_api_client(kubeconfig: str | None = None, context: str | None = None) -> client.ApiClient:
    """In-cluster configuration when running in a pod, else the kubeconfig file."""
    try:
        if kubeconfig is None and os.environ.get("KUBERNETES_SERVICE_HOST"):
            config.load_incluster_config()
            return client.ApiClient()
        path = kubeconfig or os.environ.get("KUBECONFIG") or os.path.expanduser("~/.kube/config")
        if not os.path.exists(path):
            raise KubernetesError(f"kubeconfig {path}: file not found (pass --kubeconfig)")
        return config.new_client_from_config(config_file=path, context=context)
    except (ConfigException, ValueError, TypeError, KeyError) as err:
        raise KubernetesError(f"kubeconfig {kubeconfig or 'default'}: invalid: {err}") from err


def _key(obj: KubeObject) -> tuple[str, str]:
    metadata = obj.get("metadata", {})
    return metadata.get("namespace", ""), metadata.get("name", "")


class KubernetesEndpointSource:
    """Runs the informers in threads and keeps `cache` converged with the cluster."""

    def __init__(self, api_client: client.ApiClient, cache: EndpointCache, node_name: str = "",
                 cluster: str = "default", device_lookup: DeviceLookup = device_for_ip,
                 watch_timeout_seconds: int = 300) -> None:
        self.cache = cache
        self.node_name = node_name
        self.cluster = cluster
        self._device_lookup = device_lookup
        self._lock = threading.Lock()
        self._pods: dict[tuple[str, str], KubeObject] = {}
        self._namespaces: dict[str, dict[str, str]] = {}
        self._nodes: dict[str, dict[str, str]] = {}
        self._slices: dict[tuple[str, str], KubeObject] = {}
        self._backend_services: dict[str, Service] = {}
        core, discovery = client.CoreV1Api(api_client), client.DiscoveryV1Api(api_client)
        self.informers = [
            Informer("namespaces", core.list_namespace, self._replace_namespaces,
                     self._namespace_event, watch_timeout_seconds),
            Informer("nodes", core.list_node, self._replace_nodes, self._node_event,
                     watch_timeout_seconds),
            Informer("services", core.list_service_for_all_namespaces, self._replace_services,
                     self._service_event, watch_timeout_seconds),
            Informer("endpointslices", discovery.list_endpoint_slice_for_all_namespaces,
                     self._replace_slices, self._slice_event, watch_timeout_seconds),
            Informer("pods", core.list_pod_for_all_namespaces, self._replace_pods,
                     self._pod_event, watch_timeout_seconds),
        ]
        self._informer_group = InformerGroup(self.informers)

    # lifecycle
    def start(self) -> None:
        self._informer_group.start()

    def wait_synced(self, timeout: float) -> bool:
        return self._informer_group.wait_synced(timeout)

    def stop(self) -> None:
        self._informer_group.stop()

    # lookups the datapath uses beyond EndpointSource
    def node_labels(self, node_name: str) -> dict[str, str]:
        return dict(self._nodes.get(node_name, {}))

    def service_for_backend_ip(self, ip: str) -> Service | None:
        return self._backend_services.get(ip)

    # pods
    def _replace_pods(self, items: list[KubeObject]) -> None:
        with self._lock:
            self._pods = {_key(p): p for p in items}
            self.cache.replace([e for e in map(self._endpoint, self._pods.values()) if e])

    def _pod_event(self, kind: str, pod: KubeObject) -> None:
        with self._lock:
            key = _key(pod)
            if kind == "DELETED" or pod.get("status", {}).get("phase") in ("Succeeded", "Failed"):
                self._pods.pop(key, None)
                self.cache.delete(*key)
                return
            self._pods[key] = pod
            endpoint = self._endpoint(pod)
            if endpoint is None:
                self.cache.delete(*key)
            else:
                self.cache.upsert(endpoint)

    def _endpoint(self, pod: KubeObject) -> Endpoint | None:
        metadata, spec, status = pod.get("metadata", {}), pod.get("spec", {}), pod.get("status", {})
        # Host-network pods share the node's IP: they are the host, not an endpoint of their own.
        if spec.get("hostNetwork"):
            return None
        ips = tuple(p["ip"] for p in status.get("podIPs") or [] if p.get("ip")) or (
            (status["podIP"],) if status.get("podIP") else ())
        if not ips:
            return None
        namespace = metadata.get("namespace", "")
        workload_name, workload_kind = owning_workload(pod)
        node = spec.get("nodeName", "")
        device, ifindex = "", 0
        if self.node_name and node == self.node_name:
            found = self._device_lookup(ips[0])
            if found:
                device, ifindex = found
        return Endpoint(
            namespace=namespace, pod_name=metadata.get("name", ""), ips=ips,
            labels=dict(metadata.get("labels") or {}),
            namespace_labels=dict(self._namespaces.get(namespace, {})),
            workload_name=workload_name, workload_kind=workload_kind,
            service_account=spec.get("serviceAccountName") or "default", cluster=self.cluster,
            node_name=node, device=device, ifindex=ifindex)

    def _rebuild_namespace(self, namespace: str) -> None:
        for key, pod in self._pods.items():
            if key[0] == namespace:
                endpoint = self._endpoint(pod)
                if endpoint:
                    self.cache.upsert(endpoint)

    # namespaces
    def _replace_namespaces(self, items: list[KubeObject]) -> None:
        with self._lock:
            self._namespaces = {_key(n)[1]: dict(n["metadata"].get("labels") or {}) for n in items}
            for namespace in self._namespaces:
                self._rebuild_namespace(namespace)

    def _namespace_event(self, kind: str, namespace: KubeObject) -> None:
        with self._lock:
            name = _key(namespace)[1]
            if kind == "DELETED":
                self._namespaces.pop(name, None)
                return
            labels = dict(namespace["metadata"].get("labels") or {})
            if self._namespaces.get(name) != labels:
                self._namespaces[name] = labels
                self._rebuild_namespace(name)

    # nodes
    def _replace_nodes(self, items: list[KubeObject]) -> None:
        with self._lock:
            self._nodes = {_key(n)[1]: dict(n["metadata"].get("labels") or {}) for n in items}

    def _node_event(self, kind: str, node: KubeObject) -> None:
        with self._lock:
            if kind == "DELETED":
                self._nodes.pop(_key(node)[1], None)
            else:
                self._nodes[_key(node)[1]] = dict(node["metadata"].get("labels") or {})

    # services
    def _replace_services(self, items: list[KubeObject]) -> None:
        with self._lock:
            self.cache.replace_services(s for s in map(_service, items) if s)

    def _service_event(self, kind: str, obj: KubeObject) -> None:
        with self._lock:
            namespace, name = _key(obj)
            service = _service(obj)
            if kind == "DELETED" or service is None:
                self.cache.delete_service(namespace, name)
            else:
                self.cache.upsert_service(service)

    # endpoint slices
    def _replace_slices(self, items: list[KubeObject]) -> None:
        with self._lock:
            self._slices = {_key(s): s for s in items}
            self._index_slices()

    def _slice_event(self, kind: str, obj: KubeObject) -> None:
        with self._lock:
            if kind == "DELETED":
                self._slices.pop(_key(obj), None)
            else:
                self._slices[_key(obj)] = obj
            self._index_slices()

    def _index_slices(self) -> None:
        backends: dict[str, Service] = {}
        for (namespace, _), endpoint_slice in self._slices.items():
            service_name = (endpoint_slice["metadata"].get("labels") or {}).get(
                "kubernetes.io/service-name")
            if not service_name:
                continue
            service = Service(namespace, service_name, ())
            for endpoint in endpoint_slice.get("endpoints") or []:
                for address in endpoint.get("addresses") or []:
                    backends[address] = service
        self._backend_services = backends


def _service(obj: KubeObject) -> Service | None:
    spec = obj.get("spec", {})
    ips = tuple(ip for ip in (spec.get("clusterIPs") or [spec.get("clusterIP")])
                if ip and ip != "None")
    if not ips:
        return None
    namespace, name = _key(obj)
    return Service(namespace, name, ips)
