"""The lab topology: what `flowscope lab up` builds, read from YAML (or a dict in tests).

Field names follow Kubernetes manifests (camelCase). Every error names the file, the line (from the YAML
marks) and what was expected, because a topology file is hand-written.
"""

from __future__ import annotations

import ipaddress
import os
import re
import socket
from dataclasses import dataclass, field
from typing import Any

import yaml

from common.errors import UserError

WORKLOAD_KINDS = ("Pod", "Deployment", "StatefulSet", "DaemonSet")
DEFAULT_POD_CIDR_V4 = "10.244.0.0/16"
DEFAULT_POD_CIDR_V6 = "fd00:10:244::/64"
DEFAULT_WORLD_CIDR_V4 = "198.51.100.0/24"
DEFAULT_WORLD_CIDR_V6 = "2001:db8:100::/64"
# Kubernetes object names: DNS labels.
_NAME = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")


class TopologyError(UserError):
    """A topology file (or dict) that cannot be used; the message names file, line and expectation."""


@dataclass(frozen=True)
class PodSpec:
    """One workload entry of the topology; `replicas` pods are made from it."""

    name: str
    namespace: str = "default"
    kind: str = "Pod"
    replicas: int = 1
    labels: dict[str, str] = field(default_factory=dict)
    service_account: str = "default"
    nodes: tuple[str, ...] = ()
    commands: tuple[str, ...] = ()
    cluster_dns: bool = False


@dataclass(frozen=True)
class WorldSpec:
    """A host outside the cluster (reserved:world): a namespace routed via the host, not a pod."""

    name: str
    ipv4: str = ""
    ipv6: str = ""
    dns_names: tuple[str, ...] = ()
    commands: tuple[str, ...] = ()


@dataclass(frozen=True)
class ServiceSpec:
    """A headless service: its DNS name resolves to the pods its selector matches."""

    name: str
    namespace: str
    selector: dict[str, str]


@dataclass(frozen=True)
class Topology:
    name: str
    pod_cidr_v4: str = DEFAULT_POD_CIDR_V4
    pod_cidr_v6: str = DEFAULT_POD_CIDR_V6
    world_cidr_v4: str = DEFAULT_WORLD_CIDR_V4
    world_cidr_v6: str = DEFAULT_WORLD_CIDR_V6
    nodes: tuple[str, ...] = ()
    namespaces: dict[str, dict[str, str]] = field(default_factory=dict)
    pods: tuple[PodSpec, ...] = ()
    services: tuple[ServiceSpec, ...] = ()
    world: tuple[WorldSpec, ...] = ()
    source: str = "<topology>"


# --- YAML with line numbers -------------------------------------------------------------------------

class _MarkedDict(dict):
    """A mapping that remembers the line of itself and of each key (1-based)."""

    line: int = 0
    key_lines: dict[str, int]


class _MarkedList(list):
    line: int = 0


class _Loader(yaml.SafeLoader):
    pass


def _construct_mapping(loader: _Loader, node: yaml.MappingNode) -> _MarkedDict:
    result = _MarkedDict()
    result.line = node.start_mark.line + 1
    result.key_lines = {}
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=True)
        result[key] = loader.construct_object(value_node, deep=True)
        result.key_lines[key] = key_node.start_mark.line + 1
    return result


def _construct_sequence(loader: _Loader, node: yaml.SequenceNode) -> _MarkedList:
    result = _MarkedList(loader.construct_object(child, deep=True) for child in node.value)
    result.line = node.start_mark.line + 1
    return result


_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)
_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_SEQUENCE_TAG, _construct_sequence)


def load_topology(path: str | os.PathLike[str]) -> Topology:
    """Read and validate a topology file; raises TopologyError with path and line."""
    path = os.fspath(path)
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except FileNotFoundError:
        raise TopologyError(f"{path}: no such topology file (expected a YAML file such as "
                            f"deploy/lab/demo.yaml)") from None
    except OSError as err:
        raise TopologyError(f"{path}: cannot read topology file: {err.strerror}") from None
    return parse_topology(text, source=path)


def parse_topology(data: str | dict, source: str = "<topology>") -> Topology:
    """Validate a topology given as YAML text or as an already-loaded dict."""
    if isinstance(data, str):
        try:
            data = yaml.load(data, Loader=_Loader)
        except yaml.MarkedYAMLError as err:
            mark = err.problem_mark or err.context_mark
            line = f"{mark.line + 1}:" if mark else ""
            raise TopologyError(f"{source}:{line} bad YAML: {err.problem or err.context}") from None
        except yaml.YAMLError as err:
            raise TopologyError(f"{source}: bad YAML: {err}") from None
    return _Parser(source).topology(data)


class _Parser:
    def __init__(self, source: str) -> None:
        self.source = source

    def error(self, container: Any, key: Any, message: str) -> TopologyError:
        line = 0
        if isinstance(container, _MarkedDict):
            line = container.key_lines.get(key, container.line)
        elif isinstance(container, _MarkedList):
            line = container.line
        where = f"{self.source}:{line}" if line else self.source
        return TopologyError(f"{where}: {message}")

    def mapping(self, value: Any, what: str, allowed: tuple[str, ...], parent: Any = None,
                key: Any = None) -> dict:
        if not isinstance(value, dict):
            raise self.error(parent, key, f"{what}: expected a mapping, got {_kind(value)}")
        for name in value:
            if name not in allowed:
                raise self.error(value, name, f"unknown field {name!r} in {what} "
                                              f"(expected one of: {', '.join(allowed)})")
        return value

    def string(self, container: dict, key: str, what: str, default: str | None = None,
               pattern: re.Pattern | None = _NAME) -> str:
        if key not in container:
            if default is None:
                raise self.error(container, key, f"{what}: missing field {key!r}")
            return default
        value = container[key]
        if not isinstance(value, str) or not value:
            raise self.error(container, key, f"{what}.{key}: expected a non-empty string, "
                                             f"got {_kind(value)}")
        if pattern is not None and not pattern.match(value):
            raise self.error(container, key, f"{what}.{key}: {value!r} is not a valid name "
                                             f"(expected lowercase letters, digits and '-')")
        return value

    def labels(self, container: dict, key: str, what: str) -> dict[str, str]:
        value = container.get(key, {})
        if not isinstance(value, dict):
            raise self.error(container, key, f"{what}.{key}: expected a mapping of label: value")
        out = {}
        for k, v in value.items():
            if not isinstance(k, str) or not isinstance(v, (str, int, bool)) or isinstance(v, float):
                raise self.error(value, k, f"{what}.{key}: label {k!r} must map a string to a string")
            out[k] = str(v).lower() if isinstance(v, bool) else str(v)
        return out

    def strings(self, container: dict, key: str, what: str) -> tuple[str, ...]:
        value = container.get(key, [])
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
            raise self.error(container, key, f"{what}.{key}: expected a string or a list of strings")
        return tuple(value)

    def cidr(self, container: dict, key: str, what: str, version: int, default: str) -> str:
        value = container.get(key, default)
        example = "10.244.0.0/16" if version == 4 else "fd00:10:244::/64"
        try:
            net = ipaddress.ip_network(value, strict=True) if isinstance(value, str) else None
        except ValueError:
            net = None
        if net is None or net.version != version:
            raise self.error(container, key, f"{what}.{key}: bad CIDR {value!r} (expected an IPv{version} "
                                             f"network such as {example})")
        limit = 24 if version == 4 else 112
        if net.prefixlen > limit:
            raise self.error(container, key, f"{what}.{key}: CIDR {value} is too small (expected a "
                                             f"prefix of /{limit} or shorter)")
        return str(net)

    def address(self, container: dict, key: str, what: str, version: int) -> str:
        value = container.get(key, "")
        if value == "":
            return ""
        try:
            addr = ipaddress.ip_address(value) if isinstance(value, str) else None
        except ValueError:
            addr = None
        if addr is None or addr.version != version:
            raise self.error(container, key, f"{what}.{key}: bad address {value!r} "
                                             f"(expected an IPv{version} address)")
        return str(addr)

    def topology(self, data: Any) -> Topology:
        top = self.mapping(data, "topology", ("name", "podCIDR", "worldCIDR", "nodes", "namespaces",
                                               "pods", "services", "world"))
        name = self.string(top, "name", "topology")
        cidrs = {}
        for key, (v4, v6) in {"podCIDR": (DEFAULT_POD_CIDR_V4, DEFAULT_POD_CIDR_V6),
                              "worldCIDR": (DEFAULT_WORLD_CIDR_V4, DEFAULT_WORLD_CIDR_V6)}.items():
            spec = self.mapping(top.get(key, {}), key, ("ipv4", "ipv6"), top, key)
            cidrs[key] = (self.cidr(spec, "ipv4", key, 4, v4), self.cidr(spec, "ipv6", key, 6, v6))
        nodes = self.strings(top, "nodes", "topology")
        for node in nodes:
            if not _NAME.match(node):
                raise self.error(top, "nodes", f"topology.nodes: {node!r} is not a valid node name")
        namespaces = self.namespaces(top)
        pods = self.pods(top, nodes or (socket.gethostname(),))
        for pod in pods:
            namespaces.setdefault(pod.namespace, {"kubernetes.io/metadata.name": pod.namespace})
        return Topology(
            name=name, pod_cidr_v4=cidrs["podCIDR"][0], pod_cidr_v6=cidrs["podCIDR"][1],
            world_cidr_v4=cidrs["worldCIDR"][0], world_cidr_v6=cidrs["worldCIDR"][1],
            nodes=nodes or (socket.gethostname(),), namespaces=namespaces, pods=pods,
            services=self.services(top), world=self.world(top), source=self.source)

    def namespaces(self, top: dict) -> dict[str, dict[str, str]]:
        raw = top.get("namespaces", {})
        if isinstance(raw, list):  # a plain list of names is fine too
            raw = {n: {} for n in raw}
        if not isinstance(raw, dict):
            raise self.error(top, "namespaces", "namespaces: expected a mapping of name: {labels: ...}")
        out = {}
        for ns, spec in raw.items():
            if not isinstance(ns, str) or not _NAME.match(ns):
                raise self.error(raw, ns, f"namespaces: {ns!r} is not a valid namespace name")
            spec = self.mapping(spec or {}, f"namespace {ns}", ("labels",), raw, ns)
            out[ns] = {"kubernetes.io/metadata.name": ns, **self.labels(spec, "labels", f"namespace {ns}")}
        return out

    def pods(self, top: dict, nodes: tuple[str, ...]) -> tuple[PodSpec, ...]:
        raw = top.get("pods", [])
        if not isinstance(raw, list):
            raise self.error(top, "pods", "pods: expected a list of pods")
        out, seen = [], set()
        for i, entry in enumerate(raw):
            what = f"pods[{i}]"
            spec = self.mapping(entry, what, ("name", "namespace", "kind", "replicas", "labels",
                                              "serviceAccount", "node", "nodes", "command", "commands",
                                              "clusterDNS"), raw, i)
            name = self.string(spec, "name", what)
            what = f"pod {name}"
            kind = self.string(spec, "kind", what, "Pod", pattern=None)
            if kind not in WORKLOAD_KINDS:
                raise self.error(spec, "kind", f"{what}.kind: {kind!r} is not supported "
                                               f"(expected one of: {', '.join(WORKLOAD_KINDS)})")
            replicas = spec.get("replicas", 1)
            if not isinstance(replicas, int) or isinstance(replicas, bool) or not 1 <= replicas <= 100:
                raise self.error(spec, "replicas", f"{what}.replicas: expected an integer 1..100")
            if kind == "Pod" and replicas != 1:
                raise self.error(spec, "replicas", f"{what}.replicas: a bare Pod has one replica "
                                                   f"(use kind: Deployment)")
            pod_nodes = self.strings(spec, "nodes", what) + self.strings(spec, "node", what)
            for node in pod_nodes:
                if node not in nodes:
                    raise self.error(spec, "node" if "node" in spec else "nodes",
                                     f"{what}: unknown node {node!r} (expected one of: {', '.join(nodes)})")
            namespace = self.string(spec, "namespace", what, "default")
            if (namespace, name) in seen:
                raise self.error(spec, "name", f"{what}: defined twice in namespace {namespace}")
            seen.add((namespace, name))
            cluster_dns = spec.get("clusterDNS", False)
            if not isinstance(cluster_dns, bool):
                raise self.error(spec, "clusterDNS", f"{what}.clusterDNS: expected true or false")
            out.append(PodSpec(
                name=name, namespace=namespace, kind=kind, replicas=replicas,
                labels=self.labels(spec, "labels", what) or {"app": name},
                service_account=self.string(spec, "serviceAccount", what, "default"),
                nodes=pod_nodes or nodes[:1],
                commands=self.strings(spec, "command", what) + self.strings(spec, "commands", what),
                cluster_dns=cluster_dns))
        if sum(p.cluster_dns for p in out) > 1:
            raise self.error(top, "pods", "pods: more than one pod has clusterDNS: true (expected one)")
        return tuple(out)

    def services(self, top: dict) -> tuple[ServiceSpec, ...]:
        raw = top.get("services", [])
        if not isinstance(raw, list):
            raise self.error(top, "services", "services: expected a list of services")
        out = []
        for i, entry in enumerate(raw):
            spec = self.mapping(entry, f"services[{i}]", ("name", "namespace", "selector"), raw, i)
            name = self.string(spec, "name", f"services[{i}]")
            selector = self.labels(spec, "selector", f"service {name}")
            if not selector:
                raise self.error(spec, "selector", f"service {name}: missing selector (expected labels)")
            out.append(ServiceSpec(name=name, namespace=self.string(spec, "namespace", f"service {name}",
                                                                    "default"), selector=selector))
        return tuple(out)

    def world(self, top: dict) -> tuple[WorldSpec, ...]:
        raw = top.get("world", [])
        if not isinstance(raw, list):
            raise self.error(top, "world", "world: expected a list of hosts")
        out = []
        for i, entry in enumerate(raw):
            spec = self.mapping(entry, f"world[{i}]", ("name", "ipv4", "ipv6", "dnsNames", "command",
                                                       "commands"), raw, i)
            name = self.string(spec, "name", f"world[{i}]")
            what = f"world host {name}"
            out.append(WorldSpec(
                name=name, ipv4=self.address(spec, "ipv4", what, 4), ipv6=self.address(spec, "ipv6", what, 6),
                dns_names=self.strings(spec, "dnsNames", what),
                commands=self.strings(spec, "command", what) + self.strings(spec, "commands", what)))
        return tuple(out)


def _kind(value: Any) -> str:
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    return "nothing" if value is None else f"{type(value).__name__} {value!r}"
