"""FlowMetrics against Hubble's label semantics, table-driven where the shape allows."""

import pytest
from prometheus_client import CollectorRegistry

from collector.metrics import DEFAULT_METRICS, FlowMetrics, MetricsConfigError
from common.errors import UserError
from proto.flow import flow_pb2
from lab.testbed import sample_flows as sf


def feed(config, flows, **kw):
    registry = CollectorRegistry()
    metrics = FlowMetrics(config, registry, **kw)
    for flow in flows:
        metrics.observe(flow)
    assert metrics.errors == 0
    return metrics, registry


def value(registry, name, **labels):
    return registry.get_sample_value(name, labels) or 0.0


def test_flows_processed_by_type_subtype_verdict():
    _, reg = feed("flow", sf.shop_round())
    assert value(reg, "hubble_flows_processed_total", protocol="TCP", type="Trace", subtype="to-endpoint",
                 verdict="FORWARDED") == 4
    assert value(reg, "hubble_flows_processed_total", protocol="TCP", type="Trace", subtype="to-network",
                 verdict="FORWARDED") == 1
    assert value(reg, "hubble_flows_processed_total", protocol="TCP", type="Drop", subtype="",
                 verdict="DROPPED") == 1
    assert value(reg, "hubble_flows_processed_total", protocol="HTTP", type="L7", subtype="HTTP",
                 verdict="FORWARDED") == 8
    assert value(reg, "hubble_flows_processed_total", protocol="DNS", type="L7", subtype="DNS",
                 verdict="FORWARDED") == 4
    assert value(reg, "hubble_flows_processed_total", protocol="TCP", type="PolicyVerdict", subtype="",
                 verdict="DROPPED") == 1


def test_drop_with_source_and_destination_context():
    _, reg = feed(["drop:sourceContext=namespace;destinationContext=pod"],
                  [sf.policy_drop(sf.FRONTEND, sf.DB, 5432)] * 3)
    assert value(reg, "hubble_drop_total", reason="POLICY_DENIED", protocol="TCP", source="shop",
                 destination="shop/db-0") == 3


@pytest.mark.parametrize("context, source, destination", [
    ("pod", "shop/frontend-7d9f-abcde", "shop/db-0"),
    ("pod-name", "frontend-7d9f-abcde", "db-0"),
    ("workload-name", "frontend", "db"),
    ("workload", "shop/frontend", "shop/db"),
    ("app", "frontend", "db"),
    ("ip", "10.244.0.11", "10.244.0.13"),
    ("identity", ",".join(sf.FRONTEND.labels), ",".join(sf.DB.labels)),
    ("reserved-identity|namespace", "shop", "shop"),
])
def test_context_identifiers(context, source, destination):
    _, reg = feed([f"drop:sourceContext={context};destinationContext={context}"],
                  [sf.policy_drop(sf.FRONTEND, sf.DB, 5432)])
    assert value(reg, "hubble_drop_total", reason="POLICY_DENIED", protocol="TCP", source=source,
                 destination=destination) == 1


def test_reserved_identity_and_dns_context_for_world():
    _, reg = feed(["flows-to-world:sourceContext=pod;destinationContext=reserved-identity"],
                  [sf.tcp(sf.FRONTEND, sf.WORLD, 443, syn=True)])
    assert value(reg, "hubble_flows_to_world_total", protocol="TCP", verdict="FORWARDED",
                 source="shop/frontend-7d9f-abcde", destination="reserved:world") == 1
    _, reg = feed(["flows-to-world:port;destinationContext=dns"], [sf.tcp(sf.FRONTEND, sf.WORLD, 443, syn=True)])
    assert value(reg, "hubble_flows_to_world_total", protocol="TCP", verdict="FORWARDED", port="443",
                 destination="example.com") == 1


def test_http_v2_counts_responses_with_status_and_request_direction():
    flows = sf.http_pair(sf.FRONTEND, sf.BACKEND, "GET", "http://backend:8080/users", 200, 0.012)
    flows += sf.http_pair(sf.FRONTEND, sf.BACKEND, "GET", "http://backend:8080/users", 503, 0.3)
    flows += sf.http_pair(sf.FRONTEND, sf.BACKEND, "GET", "http://backend:8080/x", 200, 0.04,
                          direction=flow_pb2.INGRESS)
    _, reg = feed(["httpV2:exemplars=false;labelsContext=source_namespace,source_workload,"
                   "destination_namespace,destination_workload"], flows)
    ctx = dict(source_namespace="shop", source_workload="frontend", destination_namespace="shop",
               destination_workload="backend")
    assert value(reg, "hubble_http_requests_total", method="GET", protocol="HTTP/1.1", status="200",
                 reporter="client", **ctx) == 1
    assert value(reg, "hubble_http_requests_total", method="GET", protocol="HTTP/1.1", status="503",
                 reporter="client", **ctx) == 1
    assert value(reg, "hubble_http_requests_total", method="GET", protocol="HTTP/1.1", status="200",
                 reporter="server", **ctx) == 1
    assert value(reg, "hubble_http_request_duration_seconds_count", method="GET", reporter="client", **ctx) == 2
    assert value(reg, "hubble_http_request_duration_seconds_bucket", method="GET", reporter="client", le="0.025",
                 **ctx) == 1
    assert value(reg, "hubble_http_request_duration_seconds_bucket", method="GET", reporter="client", le="0.5",
                 **ctx) == 2
    assert value(reg, "hubble_http_request_duration_seconds_sum", method="GET", reporter="client",
                 **ctx) == pytest.approx(0.312)


def test_grpc_status_option_labels_grpc_outcomes():
    flows = sf.grpc_pair(sf.FRONTEND, sf.BACKEND, "shop.Cart/Add", 14, 0.02)
    flows += sf.grpc_pair(sf.FRONTEND, sf.BACKEND, "shop.Cart/Add", 0, 0.02)
    flows += sf.http_pair(sf.FRONTEND, sf.BACKEND, "GET", "/", 200, 0.01)
    _, reg = feed(["httpV2:grpcStatus;labelsContext=destination_workload"], flows)
    common = dict(destination_workload="backend", reporter="client", status="200")
    assert value(reg, "hubble_http_requests_total", method="POST", protocol="HTTP/2", grpc_status="14",
                 **common) == 1
    assert value(reg, "hubble_http_requests_total", method="POST", protocol="HTTP/2", grpc_status="0",
                 **common) == 1
    assert value(reg, "hubble_http_requests_total", method="GET", protocol="HTTP/1.1", grpc_status="",
                 **common) == 1


def test_http_v1_counts_requests_and_responses_apart():
    flows = sf.http_pair(sf.FRONTEND, sf.BACKEND, "GET", "http://backend:8080/users", 404, 0.01)
    _, reg = feed(["http"], flows)
    assert value(reg, "hubble_http_requests_total", method="GET", protocol="HTTP/1.1", reporter="client") == 1
    assert value(reg, "hubble_http_responses_total", method="GET", protocol="HTTP/1.1", status="404",
                 reporter="client") == 1


def test_dns_queries_responses_and_options():
    flows = sf.dns_pair(sf.FRONTEND, "backend.shop.svc.cluster.local.", ["10.244.0.12"])
    flows += sf.dns_pair(sf.FRONTEND, "nosuch.example.", [], rcode=3)
    aaaa = sf.dns_pair(sf.FRONTEND, "backend.shop.svc.cluster.local.", [])
    for flow in aaaa:
        flow.l7.dns.qtypes[:] = ["AAAA"]
    _, reg = feed(["dns"], flows + aaaa)
    assert value(reg, "hubble_dns_queries_total", rcode="", qtypes="A", ips_returned="0") == 2
    assert value(reg, "hubble_dns_queries_total", rcode="", qtypes="AAAA", ips_returned="0") == 1
    assert value(reg, "hubble_dns_responses_total", rcode="No Error", qtypes="A", ips_returned="1") == 1
    assert value(reg, "hubble_dns_responses_total", rcode="Non-Existent Domain", qtypes="A", ips_returned="0") == 1
    assert value(reg, "hubble_dns_response_types_total", type="A", qtypes="A") == 1
    _, reg = feed(["dns:query;ignoreAAAA"], flows + aaaa)
    assert value(reg, "hubble_dns_queries_total", rcode="", qtypes="AAAA", ips_returned="0",
                 query="backend.shop.svc.cluster.local.") == 0
    assert value(reg, "hubble_dns_queries_total", rcode="", qtypes="A", ips_returned="0",
                 query="nosuch.example.") == 1


def test_tcp_icmp_ports_world_policy_kafka():
    _, reg = feed(DEFAULT_METRICS, sf.shop_round())
    assert value(reg, "hubble_tcp_flags_total", flag="SYN", family="IPv4") == 4  # the drop is not counted
    assert value(reg, "hubble_tcp_flags_total", flag="SYN-ACK", family="IPv4") == 1
    assert value(reg, "hubble_tcp_flags_total", flag="FIN", family="IPv4") == 1
    assert value(reg, "hubble_tcp_flags_total", flag="RST", family="IPv4") == 1
    assert value(reg, "hubble_icmp_total", family="IPv4", type="EchoRequest") == 1
    # replies (SYN-ACK, responses) never count: their destination port is ephemeral
    assert value(reg, "hubble_port_distribution_total", protocol="TCP", port="8080") == 7
    assert value(reg, "hubble_port_distribution_total", protocol="UDP", port="53") == 2
    assert value(reg, "hubble_flows_to_world_total", protocol="TCP", verdict="FORWARDED") == 1
    assert value(reg, "hubble_policy_verdicts_total", direction="ingress", match="l3-l4", action="forwarded",
                 source="shop", destination="shop") == 1
    assert value(reg, "hubble_policy_verdicts_total", direction="egress", match="none", action="dropped",
                 source="shop", destination="shop") == 1
    assert value(reg, "hubble_policy_verdicts_total", direction="egress", match="l7/http", action="forwarded",
                 source="shop", destination="shop") == 6
    assert value(reg, "hubble_kafka_requests_total", topic="orders", api_key="produce", error_code="0",
                 reporter="client", source_namespace="shop", destination_namespace="shop") == 1


def test_lost_events():
    metrics, reg = feed("flow", [])
    metrics.observe_lost(flow_pb2.LostEvent(source=flow_pb2.PERF_EVENT_RING_BUFFER, num_events_lost=7))
    metrics.observe_lost(flow_pb2.LostEvent(source=flow_pb2.PERF_EVENT_RING_BUFFER, num_events_lost=3))
    assert value(reg, "hubble_lost_events_total", source="perf_event_ring_buffer") == 10


def test_cardinality_limit_refuses_new_series_and_counts_them():
    flows = []
    for i in range(50):
        pod = sf.endpoint("load", f"pod-{i}", "load", 2000 + i)
        flows.append(sf.policy_drop(pod, sf.DB, 5432))
    metrics, reg = feed(["drop:sourceContext=pod;cardinalityLimit=20", "flow"], flows)
    drop_series = [s for m in reg.collect() if m.name == "hubble_drop" for s in m.samples]
    assert len(drop_series) == 20
    assert value(reg, "flowscope_metrics_cardinality_refused_total", metric="hubble_drop_total") == 30
    assert value(reg, "flowscope_metrics_series", metric="hubble_drop_total") == 20
    # known series still count; the unlimited metric is untouched
    metrics.observe(flows[0])
    assert value(reg, "hubble_drop_total", source="load/pod-0", reason="POLICY_DENIED", protocol="TCP") == 2
    assert value(reg, "flowscope_metrics_cardinality_refused_total", metric="hubble_flows_processed_total") == 0


def test_deleted_pod_series_are_forgotten():
    metrics, reg = feed(["drop:sourceContext=pod;destinationContext=namespace",
                         "httpV2:labelsContext=source_namespace,source_pod"],
                        [sf.policy_drop(sf.FRONTEND, sf.DB, 5432), sf.policy_drop(sf.BACKEND, sf.DB, 5432)]
                        + sf.http_pair(sf.FRONTEND, sf.BACKEND, "GET", "/", 200, 0.01))
    removed = metrics.forget_endpoint("shop", "frontend-7d9f-abcde")
    assert removed == 3  # one drop series, one request counter, one histogram
    assert value(reg, "hubble_drop_total", source="shop/frontend-7d9f-abcde", destination="shop",
                 reason="POLICY_DENIED", protocol="TCP") == 0
    assert value(reg, "hubble_drop_total", source="shop/backend-5c6b-fghij", destination="shop",
                 reason="POLICY_DENIED", protocol="TCP") == 1


def test_sync_endpoints_forgets_pods_that_disappeared():
    from common.endpoints import Endpoint

    metrics, reg = feed(["drop:sourceContext=ip"], [sf.policy_drop(sf.FRONTEND, sf.DB, 5432),
                                                   sf.policy_drop(sf.BACKEND, sf.DB, 5432)])
    frontend = Endpoint("shop", "frontend-7d9f-abcde", ("10.244.0.11",))
    backend = Endpoint("shop", "backend-5c6b-fghij", ("10.244.0.12",))
    assert metrics.sync_endpoints([frontend, backend]) == 0
    assert metrics.sync_endpoints([backend]) == 1
    labels = dict(reason="POLICY_DENIED", protocol="TCP")
    assert value(reg, "hubble_drop_total", source="10.244.0.11", **labels) == 0
    assert value(reg, "hubble_drop_total", source="10.244.0.12", **labels) == 1


def test_untouched_series_expire_after_ttl():
    now = [1000.0]
    metrics, reg = feed(["drop:sourceContext=pod"], [sf.policy_drop(sf.FRONTEND, sf.DB, 5432)],
                        ttl=60, clock=lambda: now[0])
    now[0] += 30
    metrics.observe(sf.policy_drop(sf.BACKEND, sf.DB, 5432))
    now[0] += 40  # frontend's series is 70 s old, backend's 40 s
    labels = dict(reason="POLICY_DENIED", protocol="TCP")
    assert value(reg, "hubble_drop_total", source="shop/frontend-7d9f-abcde", **labels) == 0
    assert value(reg, "hubble_drop_total", source="shop/backend-5c6b-fghij", **labels) == 1


@pytest.mark.parametrize("config, message", [
    ("nosuch", "unknown metric 'nosuch'"),
    ("drop:sourceContext=galaxy", "unknown context 'galaxy'"),
    ("httpV2:labelsContext=source_planet", "labelsContext='source_planet'"),
    ("dns:querry", "unknown option(s) ['querry']"),
    ("flow flow", "configured twice"),
    ("http httpV2", "enable one of them"),
    ("drop:cardinalityLimit=lots", "expected a positive integer"),
])
def test_bad_config_names_the_input(config, message):
    with pytest.raises(MetricsConfigError, match=None) as err:
        FlowMetrics(config, CollectorRegistry())
    assert message in str(err.value)
    assert isinstance(err.value, UserError)


def test_a_broken_flow_never_raises():
    metrics, _ = feed("flow", [])
    metrics.observe(None)
    assert metrics.errors == 1
