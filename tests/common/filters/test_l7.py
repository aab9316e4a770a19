"""http and dns filters."""
import pytest

from common.filters import FilterError, build_filter
from proto.flow import flow_pb2
from tests.common.filters.sample import dns_flow, http_flow, make_flow, matches

REQ = http_flow("GET", "http://backend:8080/users/1?x=2")
RESP_404 = http_flow("GET", "http://backend:8080/users/1", code=404)
RESP_503 = http_flow("POST", "http://backend:8080/orders", code=503)
DNS = dns_flow("backend.default.svc.cluster.local.")
TCP = make_flow()


@pytest.mark.parametrize("flow, fields, expected", [
    (RESP_404, dict(http_status_code=["404"]), True),
    (RESP_404, dict(http_status_code=["4+"]), True),
    (RESP_404, dict(http_status_code=["5+"]), False),
    (RESP_503, dict(http_status_code=["5+", "404"]), True),
    (REQ, dict(http_status_code=["2+"]), False),
    (TCP, dict(http_status_code=["200"]), False),
    (REQ, dict(http_method=["GET"]), True),
    (REQ, dict(http_method=["get"]), True),
    (RESP_503, dict(http_method=["GET"]), False),
    (REQ, dict(http_path=["^/users/[0-9]+$"]), True),
    (REQ, dict(http_path=["users"]), True),
    (REQ, dict(http_path=["^/orders"]), False),
    (REQ, dict(http_url=["backend:8080/users"]), True),
    (REQ, dict(http_url=["^https://"]), False),
    (TCP, dict(http_method=["GET"]), False),
    (DNS, dict(dns_query=["cluster\\.local\\.$"]), True),
    (DNS, dict(dns_query=["^backend\\."]), True),
    (DNS, dict(dns_query=["^frontend"]), False),
    (REQ, dict(dns_query=[".*"]), False),
])
def test_l7_filters(flow, fields, expected):
    assert matches(flow, **fields) is expected


@pytest.mark.parametrize("fields, field", [
    (dict(http_status_code=["600"]), "http_status_code"),
    (dict(http_status_code=["40"]), "http_status_code"),
    (dict(http_status_code=["4x"]), "http_status_code"),
    (dict(http_method=["GE T"]), "http_method"),
    (dict(http_path=["(unclosed"]), "http_path"),
    (dict(http_url=["*bad"]), "http_url"),
    (dict(dns_query=["[a-"]), "dns_query"),
])
def test_bad_l7_filters(fields, field):
    with pytest.raises(FilterError) as err:
        build_filter(flow_pb2.FlowFilter(**fields))
    assert err.value.field == field
    assert "expected" in err.value.reason or "regular expression" in err.value.reason
