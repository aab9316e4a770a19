"""Deterministic names: pods like Kubernetes names them, devices and namespaces like a CNI does.

Everything derives from hashes of the lab and pod names, so `lab up` of the same topology gives the same
names every time (the demo is reproducible) and two labs never share a device or namespace name.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from lab.topology import PodSpec

# Kubernetes' SafeEncodeString alphabet: no vowels (no words) and no look-alike characters.
_K8S_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"
IFNAMSIZ = 15


def _digest(*parts: str) -> bytes:
    return hashlib.sha256("\x00".join(parts).encode()).digest()


def _k8s_string(digest: bytes, length: int) -> str:
    n = int.from_bytes(digest, "big")
    out = []
    for _ in range(length):
        n, r = divmod(n, len(_K8S_ALPHABET))
        out.append(_K8S_ALPHABET[r])
    return "".join(out)


@dataclass(frozen=True)
class PodName:
    """One replica of a PodSpec: its name, extra per-pod labels and the node it lands on."""

    name: str
    labels: dict[str, str]
    node: str


def expand_replicas(spec: PodSpec) -> list[PodName]:
    """Pod names and per-pod labels as the Kubernetes controller of `spec.kind` would make them."""
    template_hash = _k8s_string(_digest(spec.namespace, spec.name, repr(sorted(spec.labels.items()))), 10)
    out = []
    for i in range(spec.replicas):
        node = spec.nodes[i % len(spec.nodes)]
        suffix = _k8s_string(_digest(spec.namespace, spec.name, str(i)), 5)
        if spec.kind == "Deployment":
            name = f"{spec.name}-{template_hash}-{suffix}"
            extra = {"pod-template-hash": template_hash}
        elif spec.kind == "StatefulSet":
            name = f"{spec.name}-{i}"
            extra = {"controller-revision-hash": f"{spec.name}-{template_hash}",
                     "statefulset.kubernetes.io/pod-name": name, "apps.kubernetes.io/pod-index": str(i)}
        elif spec.kind == "DaemonSet":
            name = f"{spec.name}-{suffix}"
            extra = {"controller-revision-hash": template_hash, "pod-template-generation": "1"}
        else:
            name, extra = spec.name, {}
        out.append(PodName(name=name, labels={**spec.labels, **extra}, node=node))
    return out


def lab_prefix(lab_name: str) -> str:
    """At most 5 characters naming the lab in device names; long names keep 3 letters + 2 hash chars."""
    if len(lab_name) <= 5:
        return lab_name
    return lab_name[:3] + _digest(lab_name).hex()[:2]


def device_name(lab_name: str, namespace: str, pod: str) -> str:
    """The host-side veth of a pod: lab prefix + hash, at most IFNAMSIZ characters (like Calico's caliXXX)."""
    prefix = lab_prefix(lab_name)
    return prefix + _digest(lab_name, namespace, pod).hex()[: IFNAMSIZ - len(prefix)]


def netns_name(lab_name: str, namespace: str, pod: str) -> str:
    return f"{lab_name}-{namespace}-{pod}"
