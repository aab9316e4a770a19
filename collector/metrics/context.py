"""Hubble's per-metric context options: which labels describe the two ends of a flow.

`sourceContext=namespace|pod` adds a `source` label holding the first non-empty of the listed
identifiers (likewise `destinationContext`, and the direction-specific `sourceEgressContext`,
`sourceIngressContext`, `destinationEgressContext`, `destinationIngressContext` that override them for
flows of that direction). `labelsContext=source_namespace,destination_workload,...` adds one label per
listed name instead. Label order and values follow Hubble so existing dashboards and alerts work.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

from collector.metrics.config import MetricsConfigError
from proto.flow import flow_pb2

INGRESS = flow_pb2.TrafficDirection.INGRESS
EGRESS = flow_pb2.TrafficDirection.EGRESS
DIRECTIONS = {INGRESS: "ingress", EGRESS: "egress"}

# Hubble's order; names and values are emitted in this order whatever order the user wrote.
LABELS_CONTEXT = (
    "source_ip", "source_pod", "source_namespace", "source_workload", "source_app",
    "destination_ip", "destination_pod", "destination_namespace", "destination_workload",
    "destination_app", "traffic_direction",
)
# Pod labels that name an application, most specific first (as Hubble's `app` context).
APP_LABEL_PREFIXES = ("k8s:app.kubernetes.io/name=", "k8s:k8s-app=", "k8s:app=")
CONTEXT_OPTIONS = ("sourcecontext", "destinationcontext", "sourceegresscontext",
                   "sourceingresscontext", "destinationegresscontext", "destinationingresscontext",
                   "labelscontext")


def _workload(ep: flow_pb2.Endpoint, flow: flow_pb2.Flow, is_source: bool) -> str:
    return ep.workloads[0].name if ep.workloads else ""


def _app(ep: flow_pb2.Endpoint, flow: flow_pb2.Flow, is_source: bool) -> str:
    for prefix in APP_LABEL_PREFIXES:
        for label in ep.labels:
            if label.startswith(prefix) and len(label) > len(prefix):
                return label[len(prefix):]
    return ""


def _reserved(ep: flow_pb2.Endpoint, flow: flow_pb2.Flow, is_source: bool) -> str:
    if "reserved:kube-apiserver" in ep.labels:
        return "reserved:kube-apiserver"
    return next((label for label in ep.labels if label.startswith("reserved:")), "")


def _pod(ep: flow_pb2.Endpoint, flow: flow_pb2.Flow, is_source: bool) -> str:
    return f"{ep.namespace}/{ep.pod_name}" if ep.namespace else ep.pod_name


def _ip(ep: flow_pb2.Endpoint, flow: flow_pb2.Flow, is_source: bool) -> str:
    return flow.IP.source if is_source else flow.IP.destination


def _dns(ep: flow_pb2.Endpoint, flow: flow_pb2.Flow, is_source: bool) -> str:
    return ",".join(flow.source_names if is_source else flow.destination_names)


Identifier = Callable[[flow_pb2.Endpoint, flow_pb2.Flow, bool], str]
IDENTIFIERS: dict[str, Identifier] = {
    "identity": lambda ep, flow, is_source: ",".join(ep.labels),
    "namespace": lambda ep, flow, is_source: ep.namespace,
    "pod": _pod,
    "pod-name": lambda ep, flow, is_source: ep.pod_name,
    # "workload" is to "workload-name" what "pod" is to "pod-name": qualified by the namespace.
    "workload": lambda ep, flow, is_source: (f"{ep.namespace}/{_workload(ep, flow, is_source)}"
                                             if ep.namespace and ep.workloads else _workload(ep, flow, is_source)),
    "workload-name": _workload,
    "app": _app,
    "ip": _ip,
    "dns": _dns,
    "reserved-identity": _reserved,
}


def _parse_identifiers(option: str, value: str) -> tuple[str, ...]:
    names = tuple(v.strip().lower() for v in value.split("|"))
    for name in names:
        if name not in IDENTIFIERS:
            raise MetricsConfigError(
                f"{option}={value!r}: unknown context {name!r}; expected one of {', '.join(IDENTIFIERS)}")
    return names


def _parse_labels(value: str) -> tuple[str, ...]:
    wanted = {v.strip() for v in value.split(",") if v.strip()}
    unknown = wanted - set(LABELS_CONTEXT)
    if unknown or not wanted:
        raise MetricsConfigError(f"labelsContext={value!r}: unknown label {sorted(unknown)}; "
                                 f"expected names from {', '.join(LABELS_CONTEXT)}")
    return tuple(label for label in LABELS_CONTEXT if label in wanted)


@dataclass(frozen=True)
class ContextOptions:
    source: tuple[str, ...] = ()
    destination: tuple[str, ...] = ()
    source_egress: tuple[str, ...] = ()
    source_ingress: tuple[str, ...] = ()
    destination_egress: tuple[str, ...] = ()
    destination_ingress: tuple[str, ...] = ()
    labels: tuple[str, ...] = field(default=())

    @classmethod
    def parse(cls, options: dict[str, str]) -> "ContextOptions":
        ids = {key: _parse_identifiers(key, value) for key, value in options.items()
               if key in CONTEXT_OPTIONS and key != "labelscontext"}
        labels = _parse_labels(options["labelscontext"]) if "labelscontext" in options else ()
        return cls(source=ids.get("sourcecontext", ()), destination=ids.get("destinationcontext", ()),
                   source_egress=ids.get("sourceegresscontext", ()),
                   source_ingress=ids.get("sourceingresscontext", ()),
                   destination_egress=ids.get("destinationegresscontext", ()),
                   destination_ingress=ids.get("destinationingresscontext", ()), labels=labels)

    def label_names(self) -> tuple[str, ...]:
        names = self.labels
        if self.source:
            names += ("source",)
        if self.destination:
            names += ("destination",)
        return names

    def label_values(self, flow: flow_pb2.Flow, invert: bool = False) -> tuple[str, ...]:
        """Values in label_names() order. `invert` describes a reply (e.g. an HTTP response) by its
        request: the responder becomes the destination, as Hubble's httpV2 does."""
        values = _labels_context(self.labels, flow, invert) if self.labels else ()
        if not (self.source or self.destination):
            return values
        direction = flow.traffic_direction
        src_ids = (self.source_ingress if direction == INGRESS and self.source_ingress else
                   self.source_egress if direction == EGRESS and self.source_egress else self.source)
        dst_ids = (self.destination_ingress if direction == INGRESS and self.destination_ingress else
                   self.destination_egress if direction == EGRESS and self.destination_egress
                   else self.destination)
        src = _first_value(src_ids, flow.source, flow, True)
        dst = _first_value(dst_ids, flow.destination, flow, False)
        if invert:
            src, dst = dst, src
        if self.source:
            values += (src,)
        if self.destination:
            values += (dst,)
        return values

    def endpoint_matches(self, namespace: str, pod_name: str, ips: tuple[str, ...]) -> list[dict[str, str]]:
        """Partial label matches that select the series of one (deleted) pod."""
        matches: list[dict[str, str]] = []
        for label, ids in (("source", self.source + self.source_egress + self.source_ingress),
                           ("destination", self.destination + self.destination_egress
                            + self.destination_ingress)):
            if "pod" in ids:
                matches.append({label: f"{namespace}/{pod_name}"})
            if "ip" in ids:
                matches.extend({label: ip} for ip in ips)
        for side in ("source", "destination"):
            if f"{side}_pod" in self.labels and f"{side}_namespace" in self.labels:
                matches.append({f"{side}_namespace": namespace, f"{side}_pod": pod_name})
            elif f"{side}_pod" in self.labels:
                matches.append({f"{side}_pod": pod_name})
            if f"{side}_ip" in self.labels:
                matches.extend({f"{side}_ip": ip} for ip in ips)
        return matches


def _first_value(ids: tuple[str, ...], ep: flow_pb2.Endpoint, flow: flow_pb2.Flow, is_source: bool) -> str:
    for name in ids:
        value = IDENTIFIERS[name](ep, flow, is_source)
        if value:
            return value
    return ""


def _labels_context(wanted: tuple[str, ...], flow: flow_pb2.Flow, invert: bool) -> tuple[str, ...]:
    src, dst = (flow.destination, flow.source) if invert else (flow.source, flow.destination)
    src_ip, dst_ip = (flow.IP.destination, flow.IP.source) if invert else (flow.IP.source, flow.IP.destination)
    values = []
    for label in wanted:
        side, _, what = label.partition("_")
        ep, ip = (src, src_ip) if side == "source" else (dst, dst_ip)
        if label == "traffic_direction":
            values.append(DIRECTIONS.get(flow.traffic_direction, "unknown"))
        elif what == "ip":
            values.append(ip)
        elif what == "pod":
            values.append(ep.pod_name)
        elif what == "namespace":
            values.append(ep.namespace)
        elif what == "workload":
            values.append(_workload(ep, flow, side == "source"))
        else:
            values.append(_app(ep, flow, side == "source"))
    return tuple(values)
