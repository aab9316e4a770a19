"""The view state: URL round trip, windows, and filters with `hubble observe` semantics."""

from __future__ import annotations

import pytest

from common.filters import build_request_filter
from proto.flow import flow_pb2
from ui.state import (ViewError, ViewState, flow_filters, format_selection, from_query, parse_selection, to_query,
                      window_ns)

NS = 1_000_000_000
NOW = 1_800_000_000 * NS


def test_default_view_has_an_empty_query():
    assert to_query(ViewState()) == "" and from_query("") == ViewState()


def test_query_string_round_trip():
    state = ViewState(window="custom", since="2026-01-01T10:00:00Z", until="2026-01-01T11:00:00Z",
                      namespaces=("shop", "data"), pod="shop/frontend", label="app=frontend",
                      verdicts=("DROPPED",), protocols=("http", "tcp"), http_status="5+", changes=True,
                      selection="edge:shop/frontend|shop/backend|8080|TCP|FORWARDED")
    query = to_query(state)
    assert "ns=shop,data" in query and "sel=edge:shop/frontend|shop/backend|8080|TCP|FORWARDED" in query
    assert from_query(query) == state


@pytest.mark.parametrize("query, message", [
    ("?window=2h", "window '2h': expected one of"),
    ("?verdict=MAYBE", "verdict 'MAYBE'"),
    ("?protocol=sctp2", "protocol 'sctp2'"),
    ("?status=abc", "abc"),
    ("?window=custom", "custom window: 'from' is empty"),
    ("?window=custom&since=yesterday", "yesterday"),
    ("?label=a%3D%3Db%3D", "a==b="),
])
def test_bad_input_names_the_value(query, message):
    with pytest.raises(ViewError) as err:
        from_query(query)
    assert message in str(err.value)


def test_windows():
    assert window_ns(ViewState(window="1h"), NOW) == (NOW - 3600 * NS, NOW)
    assert window_ns(ViewState(), NOW) == (NOW - 300 * NS, NOW)
    assert window_ns(ViewState(window="custom", since="2h", until="1h"), NOW) == (NOW - 7200 * NS,
                                                                                  NOW - 3600 * NS)
    with pytest.raises(ViewError, match="is not before"):
        window_ns(ViewState(window="custom", since="1h", until="2h"), NOW)


def flow(src_ns, src_pod, dst_ns, dst_pod, verdict=flow_pb2.FORWARDED, code=0, labels=()):
    f = flow_pb2.Flow(verdict=verdict)
    f.source.namespace, f.source.pod_name = src_ns, src_pod
    f.destination.namespace, f.destination.pod_name = dst_ns, dst_pod
    f.source.labels.extend(labels)
    f.l4.TCP.destination_port = 8080
    if code:
        f.l7.type = flow_pb2.RESPONSE
        f.l7.http.code = code
    return f


def matches(state: ViewState, f: flow_pb2.Flow) -> bool:
    return build_request_filter(flow_filters(state), [])(f)


def test_namespace_matches_either_side_and_combines_with_verdict():
    state = ViewState(namespaces=("data",), verdicts=("DROPPED",))
    assert matches(state, flow("shop", "frontend-1", "data", "database-0", flow_pb2.DROPPED))
    assert matches(state, flow("data", "database-0", "shop", "frontend-1", flow_pb2.DROPPED))
    assert not matches(state, flow("shop", "frontend-1", "data", "database-0"))
    assert not matches(state, flow("shop", "frontend-1", "shop", "backend-1", flow_pb2.DROPPED))


def test_pod_label_and_status():
    assert matches(ViewState(pod="shop/front"), flow("data", "db", "shop", "frontend-1"))
    assert not matches(ViewState(pod="shop/back"), flow("data", "db", "shop", "frontend-1"))
    assert matches(ViewState(pod="frontend", namespaces=("shop",)), flow("shop", "frontend-1", "x", "y"))
    labelled = flow("shop", "frontend-1", "shop", "backend-1", labels=["k8s:app=frontend"])
    assert matches(ViewState(label="app=frontend"), labelled)
    assert not matches(ViewState(label="app=backend"), labelled)
    assert matches(ViewState(http_status="5+"), flow("shop", "b", "shop", "f", code=503))
    assert not matches(ViewState(http_status="5+"), flow("shop", "b", "shop", "f", code=200))
    assert flow_filters(ViewState()) == []


def test_selection_strings():
    assert parse_selection("node:shop/frontend") == {"kind": "node", "id": "shop/frontend"}
    assert parse_selection("edge:a/b|world:x.com|80|TCP|DROPPED") == {
        "kind": "edge", "source": "a/b", "target": "world:x.com", "port": 80, "protocol": "TCP",
        "verdict": "DROPPED"}
    assert parse_selection("namespaces:ns:a|ns:b") == {"kind": "namespaces", "source": "ns:a", "target": "ns:b"}
    assert parse_selection("edge:broken") is None and parse_selection("") is None
    for text in ("node:shop/frontend", "edge:a/b|world:x.com|80|TCP|DROPPED", "namespaces:ns:a|ns:b"):
        assert format_selection(parse_selection(text)) == text
    assert format_selection(None) == ""
