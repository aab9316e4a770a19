"""Pod and service filters: "namespace/name-prefix", or "namespace/" (and "namespace") for a whole
namespace, as Hubble's source_pod/destination_pod/source_service/destination_service."""

from __future__ import annotations

from common.filters.base import FilterError, FlowPredicate
from proto.flow import flow_pb2


def parse_namespaced(field: str, value: str) -> tuple[str, str]:
    if not value:
        raise FilterError(field, value, 'expected "namespace", "namespace/" or "namespace/name-prefix"')
    namespace, _, prefix = value.partition("/")
    if "/" in prefix:
        raise FilterError(field, value, 'expected at most one "/" ("namespace/name-prefix")')
    return namespace, prefix


def namespaced_matcher(field: str, values, get) -> FlowPredicate:
    """`get(flow)` returns (namespace, name) of the side being matched."""
    wanted = [parse_namespaced(field, v) for v in values]

    def match(flow: flow_pb2.Flow) -> bool:
        namespace, name = get(flow)
        return any(namespace == ns and (not prefix or (name and name.startswith(prefix)))
                   for ns, prefix in wanted)

    return match


def build(ff: flow_pb2.FlowFilter) -> list[FlowPredicate]:
    preds = []
    if ff.source_pod:
        preds.append(namespaced_matcher("source_pod", ff.source_pod,
                                        lambda f: (f.source.namespace, f.source.pod_name)))
    if ff.destination_pod:
        preds.append(namespaced_matcher("destination_pod", ff.destination_pod,
                                        lambda f: (f.destination.namespace, f.destination.pod_name)))
    if ff.source_service:
        preds.append(namespaced_matcher("source_service", ff.source_service,
                                        lambda f: (f.source_service.namespace, f.source_service.name)))
    if ff.destination_service:
        preds.append(namespaced_matcher(
            "destination_service", ff.destination_service,
            lambda f: (f.destination_service.namespace, f.destination_service.name)))
    return preds
