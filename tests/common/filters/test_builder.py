"""How fields, filters and whitelist/blacklist combine; the builder never crashes on arbitrary input."""
import pytest
from hypothesis import given, settings, strategies as st

from common.filters import FilterError, build_request_filter, time_range
from proto.flow import flow_pb2
from tests.common.filters.sample import BASE_NS, endpoint, make_flow

FF = flow_pb2.FlowFilter
A_TO_B = make_flow("10.0.0.1", "10.0.0.2", dport=80)
B_TO_A = make_flow("10.0.0.2", "10.0.0.1", dport=443)
C_TO_B = make_flow("10.0.0.3", "10.0.0.2", dport=80, verdict=flow_pb2.DROPPED)
FLOWS = {"a>b": A_TO_B, "b>a": B_TO_A, "c>b": C_TO_B}


@pytest.mark.parametrize("whitelist, blacklist, expected", [
    ([], [], {"a>b", "b>a", "c>b"}),
    ([FF()], [], {"a>b", "b>a", "c>b"}),
    # fields of one filter: AND
    ([FF(source_ip=["10.0.0.1"], destination_port=["80"])], [], {"a>b"}),
    ([FF(source_ip=["10.0.0.1"], destination_port=["443"])], [], set()),
    # values within a field: OR
    ([FF(source_ip=["10.0.0.1", "10.0.0.3"])], [], {"a>b", "c>b"}),
    # filters of the whitelist: OR (what `--ip 10.0.0.1` sends: one filter per side)
    ([FF(source_ip=["10.0.0.1"]), FF(destination_ip=["10.0.0.1"])], [], {"a>b", "b>a"}),
    # blacklist only
    ([], [FF(verdict=[flow_pb2.DROPPED])], {"a>b", "b>a"}),
    # whitelist and blacklist: any allow and no deny
    ([FF(destination_ip=["10.0.0.2"])], [FF(source_ip=["10.0.0.3"])], {"a>b"}),
    ([FF(destination_ip=["10.0.0.2"])], [FF(source_ip=["10.0.0.3"]), FF(destination_port=["80"])], set()),
    ([FF(destination_ip=["10.0.0.2"])], [FF(source_ip=["10.0.0.3"], destination_port=["443"])],
     {"a>b", "c>b"}),
])
def test_request_filter(whitelist, blacklist, expected):
    predicate = build_request_filter(whitelist, blacklist)
    assert {name for name, flow in FLOWS.items() if predicate(flow)} == expected


def test_time_range_inclusive():
    flow = make_flow(time_ns=BASE_NS)
    assert time_range(BASE_NS, BASE_NS)(flow)
    assert time_range(None, BASE_NS - 1)(flow) is False
    assert time_range(BASE_NS + 1, None)(flow) is False


def test_bad_filter_in_blacklist_is_reported():
    with pytest.raises(FilterError, match="destination_port"):
        build_request_filter([FF()], [FF(destination_port=["x"])])


STRING_FIELDS = ["source_ip", "destination_ip", "source_pod", "destination_pod", "source_label",
                 "destination_label", "source_port", "destination_port", "protocol", "http_status_code",
                 "http_method", "http_path", "http_url", "dns_query", "node_name", "source_fqdn",
                 "destination_fqdn", "source_service", "uuid"]
SAMPLE = make_flow(dst=endpoint("default", "backend", ["k8s:app=x", "reserved:world"]),
                   destination_names=["a.example.com"])


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(STRING_FIELDS), st.lists(st.text(max_size=30), min_size=1, max_size=3),
       st.lists(st.integers(min_value=0, max_value=2**31 - 1), max_size=2))
def test_builder_never_crashes(field, values, numbers):
    """Arbitrary strings either build a predicate that evaluates cleanly or raise FilterError."""
    ff = FF(**{field: values}, verdict=[n % 8 for n in numbers[:1]], source_identity=numbers)
    try:
        predicate = build_request_filter([ff], [ff])
    except FilterError as err:
        assert err.field and str(err)
        return
    assert predicate(SAMPLE) in (True, False)
    assert predicate(flow_pb2.Flow()) in (True, False)
