"""verdict, drop reason, direction, reply, event type, node name, fqdn, identity, workload, uuid,
interface filters."""
import pytest

from common.filters import FilterError, build_filter
from proto.flow import flow_pb2
from tests.common.filters.sample import make_flow, matches

FWD = make_flow(uuid="u-1", interface=flow_pb2.NetworkInterface(index=7, name="lxc1"),
                destination_names=["api.example.com."])
DROP = make_flow(verdict=flow_pb2.DROPPED, drop_reason_desc=flow_pb2.POLICY_DENIED, is_reply=None,
                 event_type=flow_pb2.CiliumEventType(type=1, sub_type=133),
                 traffic_direction=flow_pb2.EGRESS, node_name="cluster-a/worker-2")
REPLY = make_flow(is_reply=True, event_type=flow_pb2.CiliumEventType(type=4, sub_type=5))
UNKNOWN_REPLY = make_flow(is_reply=None)
Workload = flow_pb2.Workload


@pytest.mark.parametrize("flow, fields, expected", [
    (FWD, dict(verdict=[flow_pb2.FORWARDED]), True),
    (FWD, dict(verdict=[flow_pb2.DROPPED, flow_pb2.AUDIT]), False),
    (DROP, dict(verdict=[flow_pb2.DROPPED]), True),
    (DROP, dict(drop_reason_desc=[flow_pb2.POLICY_DENIED]), True),
    (DROP, dict(drop_reason_desc=[flow_pb2.POLICY_DENY]), False),
    (FWD, dict(reply=[False]), True),
    (REPLY, dict(reply=[False]), False),
    (REPLY, dict(reply=[True]), True),
    (UNKNOWN_REPLY, dict(reply=[False]), False),
    (UNKNOWN_REPLY, dict(reply=[True]), False),
    (DROP, dict(reply=[False]), True),  # Hubble treats a drop's unknown is_reply as false
    (FWD, dict(traffic_direction=[flow_pb2.INGRESS]), True),
    (DROP, dict(traffic_direction=[flow_pb2.INGRESS]), False),
    (FWD, dict(event_type=[flow_pb2.EventTypeFilter(type=4)]), True),
    (FWD, dict(event_type=[flow_pb2.EventTypeFilter(type=4, match_sub_type=True, sub_type=0)]), True),
    (REPLY, dict(event_type=[flow_pb2.EventTypeFilter(type=4, match_sub_type=True, sub_type=0)]), False),
    (DROP, dict(event_type=[flow_pb2.EventTypeFilter(type=4), flow_pb2.EventTypeFilter(type=1)]), True),
    (FWD, dict(node_name=["node-1"]), True),
    (FWD, dict(node_name=["node-*"]), True),
    (FWD, dict(node_name=["node-?"]), True),
    (FWD, dict(node_name=["node"]), False),
    (DROP, dict(node_name=["worker-*"]), True),
    (DROP, dict(node_name=["cluster-a/*"]), True),
    (DROP, dict(node_name=["cluster-b/*"]), False),
    (DROP, dict(node_name=["*"]), True),
    (FWD, dict(destination_fqdn=["api.example.com"]), True),
    (FWD, dict(destination_fqdn=["*.example.com"]), True),
    (FWD, dict(destination_fqdn=["API.EXAMPLE.COM."]), True),
    (FWD, dict(destination_fqdn=["*.example.org"]), False),
    (FWD, dict(source_fqdn=["*"]), False),
    (FWD, dict(source_identity=[256]), True),
    (FWD, dict(source_identity=[2, 257]), False),
    (FWD, dict(destination_identity=[257]), True),
    (FWD, dict(source_workload=[Workload(name="frontend")]), True),
    (FWD, dict(source_workload=[Workload(kind="Deployment")]), True),
    (FWD, dict(source_workload=[Workload(name="frontend", kind="StatefulSet")]), False),
    (FWD, dict(destination_workload=[Workload(name="frontend"), Workload(name="backend")]), True),
    (FWD, dict(uuid=["u-1"]), True),
    (FWD, dict(uuid=["u-2"]), False),
    (FWD, dict(interface=[flow_pb2.NetworkInterface(name="lxc1")]), True),
    (FWD, dict(interface=[flow_pb2.NetworkInterface(index=8)]), False),
    (FWD, dict(trace_id=["abc"]), False),
])
def test_flow_field_filters(flow, fields, expected):
    assert matches(flow, **fields) is expected


@pytest.mark.parametrize("fields, field", [
    (dict(verdict=[99]), "verdict"),
    (dict(drop_reason_desc=[1]), "drop_reason_desc"),
    (dict(traffic_direction=[5]), "traffic_direction"),
    (dict(node_name=["a/b/c"]), "node_name"),
    (dict(node_name=["no spaces"]), "node_name"),
    (dict(destination_fqdn=["exa mple.com"]), "destination_fqdn"),
    (dict(source_fqdn=["."]), "source_fqdn"),
    (dict(source_workload=[Workload()]), "source_workload"),
    (dict(interface=[flow_pb2.NetworkInterface()]), "interface"),
])
def test_bad_flow_field_filters(fields, field):
    with pytest.raises(FilterError) as err:
        build_filter(flow_pb2.FlowFilter(**fields))
    assert err.value.field == field
