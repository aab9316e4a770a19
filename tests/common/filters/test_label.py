import pytest

from common.filters import FilterError, build_filter
from proto.flow import flow_pb2
from tests.common.filters.sample import endpoint, make_flow, matches

FLOW = make_flow(dst=endpoint("default", "backend-1", [
    "k8s:app=backend", "k8s:tier=api", "k8s:replicas=3", "container:app=other",
    "k8s:io.kubernetes.pod.namespace=default", "k8s:app.kubernetes.io/name=shop"]))
WORLD = make_flow(dst=endpoint("", "", ["reserved:world"], identity=2))


@pytest.mark.parametrize("selector, expected", [
    ("app=backend", True),
    ("k8s:app=backend", True),
    ("any:app=backend", True),
    ("container:app=backend", False),
    ("container:app=other", True),
    ("app=frontend", False),
    ("app==backend", True),
    ("app!=frontend", True),
    ("app!=backend", False),
    ("missing!=x", True),  # Kubernetes: a missing key satisfies !=
    ("app in (frontend, backend)", True),
    ("k8s:app in (frontend)", False),
    ("app notin (frontend)", True),
    ("k8s:app notin (backend)", False),
    ("tier", True),
    ("k8s:tier", True),
    ("reserved:tier", False),
    ("!tier", False),
    ("!missing", True),
    ("app=backend,tier=api", True),
    ("app=backend, tier=web", False),
    ("app in (a,backend),tier", True),
    ("replicas>2", True),
    ("replicas<3", False),
    ("k8s:io.kubernetes.pod.namespace=default", True),
    ("app.kubernetes.io/name=shop", True),
    ("", True),
    ("app=", False),  # an empty value is valid in Kubernetes and matches app=""
])
def test_selector(selector, expected):
    assert matches(FLOW, destination_label=[selector]) is expected


@pytest.mark.parametrize("flow, fields, expected", [
    (WORLD, dict(destination_label=["reserved:world"]), True),
    (WORLD, dict(destination_label=["reserved:host"]), False),
    (FLOW, dict(destination_label=["app=nope", "tier=api"]), True),  # alternatives
    (FLOW, dict(source_label=["app=frontend"]), True),
    (FLOW, dict(source_label=["app=backend"]), False),
])
def test_label_filters(flow, fields, expected):
    assert matches(flow, **fields) is expected


@pytest.mark.parametrize("selector", [
    "=x", "app in (a", "app in a,b", "a b", "app=~x", "replicas>x", "app=(x)", "!", "app in (a$)",
])
def test_bad_selector(selector):
    with pytest.raises(FilterError) as err:
        build_filter(flow_pb2.FlowFilter(source_label=[selector]))
    assert err.value.field == "source_label" and err.value.value == selector
