import pytest

from common.filters import FilterError, build_filter
from proto.flow import flow_pb2
from tests.common.filters.sample import make_flow, matches

V4 = make_flow("10.244.0.10", "10.244.1.20")
V6 = make_flow("fd00:10:244::a", "fd00:10:244::14")


@pytest.mark.parametrize("flow, fields, expected", [
    (V4, dict(source_ip=["10.244.0.10"]), True),
    (V4, dict(source_ip=["10.244.1.20"]), False),
    (V4, dict(destination_ip=["10.244.1.20"]), True),
    (V4, dict(source_ip=["10.244.0.0/24"]), True),
    (V4, dict(source_ip=["10.244.1.0/24"]), False),
    (V4, dict(source_ip=["192.168.0.1", "10.0.0.0/8"]), True),
    (V4, dict(source_ip=["fd00::/8"]), False),
    (V6, dict(source_ip=["fd00:10:244::/64"]), True),
    (V6, dict(source_ip=["fd00:10:244:0::a"]), True),  # non-canonical spelling of the same address
    (V6, dict(destination_ip=["fd00:10:244::a"]), False),
    (V4, dict(ip_version=[flow_pb2.IPv4]), True),
    (V4, dict(ip_version=[flow_pb2.IPv6]), False),
    (V6, dict(ip_version=[flow_pb2.IPv6]), True),
    (make_flow(IP=flow_pb2.IP()), dict(source_ip=["0.0.0.0/0"]), False),
])
def test_ip_filters(flow, fields, expected):
    assert matches(flow, **fields) is expected


@pytest.mark.parametrize("fields, field", [
    (dict(source_ip=["10.0.0.300"]), "source_ip"),
    (dict(destination_ip=["10.0.0.1/8"]), "destination_ip"),  # host bits set
    (dict(source_ip=["10.0.0.0/33"]), "source_ip"),
    (dict(source_ip=[""]), "source_ip"),
    (dict(ip_version=[0]), "ip_version"),
    (dict(ip_version=[7]), "ip_version"),
])
def test_bad_ip_filters(fields, field):
    with pytest.raises(FilterError) as err:
        build_filter(flow_pb2.FlowFilter(**fields))
    assert err.value.field == field
    assert field in str(err.value)
