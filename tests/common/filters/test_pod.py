import pytest

from common.filters import FilterError, build_filter
from proto.flow import flow_pb2
from tests.common.filters.sample import endpoint, make_flow, matches

FLOW = make_flow(source_service=flow_pb2.Service(namespace="default", name="frontend-svc"),
                 destination_service=flow_pb2.Service(namespace="shop", name="backend"))
WORLD = make_flow(dst=endpoint("", "", ["reserved:world"], identity=2))


@pytest.mark.parametrize("flow, fields, expected", [
    (FLOW, dict(source_pod=["default/frontend"]), True),
    (FLOW, dict(source_pod=["default/frontend-7d4f9"]), True),
    (FLOW, dict(source_pod=["default/backend"]), False),
    (FLOW, dict(source_pod=["default/"]), True),
    (FLOW, dict(source_pod=["default"]), True),
    (FLOW, dict(source_pod=["kube-system/"]), False),
    (FLOW, dict(source_pod=["kube-system/", "default/front"]), True),
    (FLOW, dict(destination_pod=["default/backend"]), True),
    (FLOW, dict(destination_pod=["default/frontend"]), False),
    (WORLD, dict(destination_pod=["default/"]), False),
    (FLOW, dict(source_service=["default/frontend"]), True),
    (FLOW, dict(destination_service=["shop/"]), True),
    (FLOW, dict(destination_service=["default/backend"]), False),
])
def test_pod_filters(flow, fields, expected):
    assert matches(flow, **fields) is expected


@pytest.mark.parametrize("fields, field", [
    (dict(source_pod=[""]), "source_pod"),
    (dict(destination_pod=["a/b/c"]), "destination_pod"),
    (dict(source_service=[""]), "source_service"),
])
def test_bad_pod_filters(fields, field):
    with pytest.raises(FilterError, match=field):
        build_filter(flow_pb2.FlowFilter(**fields))
