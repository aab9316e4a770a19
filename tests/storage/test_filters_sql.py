"""The SQL translation of FlowFilters selects exactly the flows common.filters selects."""

import pytest

from common.filters import FilterError, build_request_filter
from proto.flow import flow_pb2
from storage import FlowWriter
from tests.storage.flows import BASE_NS, base, every_family

F = flow_pb2.FlowFilter
W = flow_pb2.Workload


def _flows() -> list[flow_pb2.Flow]:
    flows = every_family()
    other = base(BASE_NS + 100, src=("web", "api-1", ""), dst=("shop", "backend-x", "backend"),
                 node="other/node-b")
    other.source.ClearField("workloads")
    other.source.labels.extend(["k8s:tier=2", "k8s:env=prod"])
    other.l4.TCP.flags.RST = True
    flows.append(other)
    nolabel = base(BASE_NS + 101, proto="SCTP", dport=9999)
    nolabel.ClearField("is_reply")
    nolabel.source_service.name, nolabel.source_service.namespace = "frontend-svc", "shop"
    flows.append(nolabel)
    return flows


FILTERS = [
    [F(source_ip=["10.244.0.10"])], [F(destination_ip=["10.244.0.0/24"])],
    [F(destination_ip=["93.184.216.0/24"])], [F(source_ip=["fd00:10:244::/64"])],
    [F(source_ip=["fd00:10:244::10"])], [F(source_ip_xlated=["fd00:10:244::99"])],
    [F(ip_version=[flow_pb2.IPv6])],
    [F(source_pod=["shop/"])], [F(source_pod=["shop/backend"])], [F(destination_pod=["db"])],
    [F(destination_pod=["shop/front", "data/kafka"])],
    [F(source_service=["shop/frontend"])], [F(destination_service=["shop/backend"])],
    [F(source_label=["k8s:app=frontend"])], [F(source_label=["app in (backend, coredns)"])],
    [F(source_label=["!app"])], [F(source_label=["tier>1,env=prod"])], [F(destination_label=["app!=frontend"])],
    [F(source_label=["k8s:io.kubernetes.pod.namespace=kube-system"])],
    [F(destination_port=["8080"])], [F(source_port=["53", "8080"])],
    [F(protocol=["udp"])], [F(protocol=["icmp"])], [F(protocol=["http"])], [F(protocol=["dns", "kafka"])],
    [F(protocol=["sctp"])],
    [F(verdict=[flow_pb2.DROPPED])], [F(drop_reason_desc=[flow_pb2.POLICY_DENIED])],
    [F(reply=[True])], [F(reply=[False])], [F(traffic_direction=[flow_pb2.EGRESS])],
    [F(event_type=[flow_pb2.EventTypeFilter(type=129)])],
    [F(event_type=[flow_pb2.EventTypeFilter(type=4, match_sub_type=True, sub_type=0)])],
    [F(tcp_flags=[flow_pb2.TCPFlags(SYN=True)])], [F(tcp_flags=[flow_pb2.TCPFlags(RST=True)])],
    [F(node_name=["node-a"])], [F(node_name=["other/*"])],
    [F(destination_fqdn=["*.example.com"])], [F(destination_fqdn=["API.example.com."])],
    [F(source_identity=[300])], [F(destination_identity=[2])],
    [F(source_workload=[W(name="frontend")])], [F(destination_workload=[W(kind="Deployment")])],
    [F(source_workload=[W(name="frontend", kind="StatefulSet")])],
    [F(http_status_code=["5+"])], [F(http_status_code=["200"])], [F(http_method=["get"])],
    [F(http_path=["^/users$"])], [F(http_url=["id=1"])], [F(dns_query=[r"example\.com\.$"])],
    [F(uuid=["nope"])], [F(interface=[flow_pb2.NetworkInterface(name="lxc12345")])],
    [F(trace_id=["abc"])], [F(http_header=[flow_pb2.HTTPHeader(key="content-type", value="text/html")])],
    [F(node_labels=["zone=a"])],
    [F(source_pod=["shop/"], destination_port=["8080"], verdict=[flow_pb2.FORWARDED])],
    [F(protocol=["tcp"]), F(protocol=["udp"])],
]
BLACKLISTS = [([], [F(source_pod=["shop/"])]), ([F(protocol=["tcp"])], [F(destination_port=["8080"])])]


def test_sql_filters_agree_with_collector_filters(store, tmp_path):
    flows = _flows()
    with FlowWriter(store, spool_dir=str(tmp_path / "spool")) as writer:
        writer.write(flows)
    cases = [(wl, []) for wl in FILTERS] + BLACKLISTS
    for whitelist, blacklist in cases:
        predicate = build_request_filter(whitelist, blacklist)
        expected = [f.uuid for f in flows if predicate(f)]
        got = [f.uuid for f in store.query_flows(whitelist, blacklist, limit=None)]
        assert got == expected, f"whitelist={whitelist} blacklist={blacklist}"
    # The filters above are not vacuous: most select some flows but not all.
    sizes = [store.count(wl) for wl in FILTERS]
    assert sum(0 < n < len(flows) for n in sizes) >= 40


@pytest.mark.parametrize("bad", [F(source_ip=["10.0.0.300"]), F(protocol=["carrier-pigeon"]),
                                 F(http_path=["(unclosed"]), F(source_label=["=app"]),
                                 F(http_status_code=["700"]), F(http_method=["GET /"])])
def test_bad_filters_raise_the_collectors_error(chdb_dir, bad):
    from storage import open_store
    store = open_store(f"chdb://{chdb_dir}?database=filters_unused")
    with pytest.raises(FilterError):
        store.query_flows([bad])
    with pytest.raises(FilterError):
        build_request_filter([bad], [])
