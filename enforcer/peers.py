"""PeerInfo from what flowscope knows about an end of a connection: a collector Endpoint, or a stored
flow's endpoint (Hubble-style source-prefixed labels)."""

from __future__ import annotations

from common.endpoints import Endpoint
from enforcer.policy.model import NAMESPACE_LABEL, NS_LABEL_PREFIX, PeerInfo
from proto.flow import flow_pb2

_SA_LABEL = "io.cilium.k8s.policy.serviceaccount"
_CLUSTER_LABEL = "io.cilium.k8s.policy.cluster"
_RESERVED_KINDS = {"reserved:host": "host", "reserved:remote-node": "remote-node", "reserved:world": "world",
                   "reserved:kube-apiserver": "kube-apiserver", "reserved:health": "health",
                   "reserved:init": "init", "reserved:unmanaged": "unmanaged"}


def from_endpoint(ep: Endpoint, named_ports: dict[str, tuple[str, int]] | None = None) -> PeerInfo:
    return PeerInfo(kind="host" if ep.host_network else "endpoint", namespace=ep.namespace,
                    labels=dict(ep.labels), namespace_labels=dict(ep.namespace_labels),
                    service_account=ep.service_account, cluster=ep.cluster, ip=ep.ips[0] if ep.ips else "",
                    named_ports=dict(named_ports or {}), pod_name=ep.pod_name,
                    workload=ep.workload_name or ep.pod_name)


def from_flow_endpoint(ep: flow_pb2.Endpoint, ip: str, names=()) -> PeerInfo:
    labels: dict[str, str] = {}
    ns_labels: dict[str, str] = {}
    service_account = ""
    cluster = ep.cluster_name or "default"
    kind = ""
    for raw in ep.labels:
        if raw in _RESERVED_KINDS:
            kind = kind or _RESERVED_KINDS[raw]
            continue
        source, _, label = raw.partition(":")
        if source != "k8s" or not label:
            continue
        key, _, value = label.partition("=")
        if key == NAMESPACE_LABEL:
            continue
        if key == _SA_LABEL:
            service_account = value
        elif key == _CLUSTER_LABEL:
            cluster = value
        elif key.startswith(NS_LABEL_PREFIX):
            ns_labels[key[len(NS_LABEL_PREFIX):]] = value
        else:
            labels[key] = value
    if not kind:
        kind = "endpoint" if (ep.namespace or ep.pod_name) else "world"
    workload = ep.workloads[0].name if ep.workloads else ep.pod_name
    return PeerInfo(kind=kind, namespace=ep.namespace, labels=labels, namespace_labels=ns_labels,
                    service_account=service_account, cluster=cluster, ip=ip, names=tuple(names),
                    pod_name=ep.pod_name, workload=workload)
