"""Output formats against golden lines in hubble's format."""
import io
import json

from google.protobuf import json_format, wrappers_pb2

from common.hubble_json import response_line as format_json
from flowscope.printer import Printer, format_compact, format_dict
from proto.flow import flow_pb2
from proto.observer import observer_pb2
from tests.common.filters.sample import BASE_NS, dns_flow, endpoint, http_flow, make_flow

T = BASE_NS + 123_456_789  # Nov 14 22:13:20.123 UTC
CLIENT = endpoint("default", "frontend-7d4f9", ["k8s:app=frontend"], identity=256)
SERVER = endpoint("default", "backend-5c8b6", ["k8s:app=backend"], identity=257)


def resp(flow: flow_pb2.Flow) -> observer_pb2.GetFlowsResponse:
    return observer_pb2.GetFlowsResponse(flow=flow, node_name=flow.node_name, time=flow.time)


SYN = make_flow(time_ns=T, src=CLIENT, dst=SERVER, flags=("SYN",))
SYN_ACK = make_flow("10.244.0.20", "10.244.0.10", sport=8080, dport=43210, time_ns=T, src=SERVER,
                    dst=CLIENT, flags=("SYN", "ACK"), is_reply=True,
                    event_type=flow_pb2.CiliumEventType(type=4, sub_type=5))
TO_WORLD = make_flow("10.244.0.10", "93.184.216.34", dport=443, time_ns=T, src=CLIENT,
                     dst=endpoint("", "", ["reserved:world"], identity=2), flags=("ACK", "FIN"),
                     destination_names=["example.com"], is_reply=None)
V6_WORLD = make_flow("fd00:10:244::a", "2001:db8::1", dport=80, time_ns=T, src=CLIENT,
                     dst=endpoint("", "", ["reserved:world"], identity=2), flags=("RST",))
POLICY_DROP = make_flow(time_ns=T, src=CLIENT, dst=SERVER, verdict=flow_pb2.DROPPED, is_reply=None,
                        drop_reason_desc=flow_pb2.POLICY_DENIED,
                        event_type=flow_pb2.CiliumEventType(type=1, sub_type=133))
VERDICT = make_flow(time_ns=T, src=CLIENT, dst=SERVER, policy_match_type=2,
                    event_type=flow_pb2.CiliumEventType(type=5))
DENIED = make_flow(time_ns=T, src=CLIENT, dst=SERVER, verdict=flow_pb2.DROPPED, is_reply=None,
                   traffic_direction=flow_pb2.EGRESS, event_type=flow_pb2.CiliumEventType(type=5, sub_type=133))
HTTP = http_flow("GET", "http://backend:8080/users/1", time_ns=T, src=CLIENT, dst=SERVER,
                 Summary="HTTP/1.1 GET http://backend:8080/users/1")
HTTP_RESP = http_flow("GET", "http://backend:8080/users/1", code=200, time_ns=T, src=SERVER, dst=CLIENT,
                      sport=8080, dport=43210, is_reply=True)
HTTP_RESP.l7.latency_ns = 3_400_000
DNS = dns_flow("backend.default.svc.cluster.local.", time_ns=T, src=CLIENT, dst=SERVER)

GOLDEN = [
    (SYN, "Nov 14 22:13:20.123: default/frontend-7d4f9:43210 (ID:256) -> default/backend-5c8b6:8080 (ID:257) "
          "to-endpoint FORWARDED (TCP Flags: SYN)"),
    (SYN_ACK, "Nov 14 22:13:20.123: default/frontend-7d4f9:43210 (ID:256) <- default/backend-5c8b6:8080 "
              "(ID:257) from-endpoint FORWARDED (TCP Flags: SYN, ACK)"),
    (TO_WORLD, "Nov 14 22:13:20.123: default/frontend-7d4f9:43210 (ID:256) <> example.com:443 (world) "
               "to-endpoint FORWARDED (TCP Flags: ACK, FIN)"),
    (V6_WORLD, "Nov 14 22:13:20.123: default/frontend-7d4f9:43210 (ID:256) -> [2001:db8::1]:80 (world) "
               "to-endpoint FORWARDED (TCP Flags: RST)"),
    (POLICY_DROP, "Nov 14 22:13:20.123: default/frontend-7d4f9:43210 (ID:256) <> default/backend-5c8b6:8080 "
                  "(ID:257) Policy denied DROPPED (TCP Flags: SYN)"),
    (VERDICT, "Nov 14 22:13:20.123: default/frontend-7d4f9:43210 (ID:256) -> default/backend-5c8b6:8080 "
              "(ID:257) policy-verdict:L3-L4 INGRESS ALLOWED (TCP Flags: SYN)"),
    (DENIED, "Nov 14 22:13:20.123: default/frontend-7d4f9:43210 (ID:256) <> default/backend-5c8b6:8080 "
             "(ID:257) policy-verdict:none EGRESS DENIED (TCP Flags: SYN)"),
    (HTTP, "Nov 14 22:13:20.123: default/frontend-7d4f9:43210 (ID:256) -> default/backend-5c8b6:8080 (ID:257) "
           "http-request FORWARDED (HTTP/1.1 GET http://backend:8080/users/1)"),
    (HTTP_RESP, "Nov 14 22:13:20.123: default/frontend-7d4f9:43210 (ID:256) <- default/backend-5c8b6:8080 "
                "(ID:257) http-response FORWARDED (HTTP/1.1 200 3ms (GET http://backend:8080/users/1))"),
    (DNS, "Nov 14 22:13:20.123: default/frontend-7d4f9:43210 (ID:256) -> default/backend-5c8b6:53 (ID:257) "
          "dns-request FORWARDED (DNS Query backend.default.svc.cluster.local. A)"),
]


def test_compact_golden_lines():
    for flow, line in GOLDEN:
        assert format_compact(resp(flow)) == line


def test_compact_node_name_and_lost_events():
    assert format_compact(resp(SYN), node_name=True).startswith("Nov 14 22:13:20.123 [node-1]: default/")
    lost = observer_pb2.GetFlowsResponse(lost_events=flow_pb2.LostEvent(
        source=flow_pb2.HUBBLE_RING_BUFFER, num_events_lost=42, cpu=wrappers_pb2.Int32Value(value=1)))
    assert format_compact(lost) == "EVENTS LOST: HUBBLE_RING_BUFFER CPU(1) 42"


def test_json_is_hubble_proto3_json_with_proto_field_names():
    line = format_json(resp(SYN_ACK))
    data = json.loads(line)
    assert list(data) == ["flow", "node_name", "time"] and "\n" not in line
    flow = data["flow"]
    assert flow["verdict"] == "FORWARDED" and flow["is_reply"] is True
    assert flow["IP"]["ipVersion"] == "IPv4" and flow["Type"] == "L3_L4"
    assert flow["source"]["pod_name"] == "backend-5c8b6" and flow["traffic_direction"] == "INGRESS"
    assert flow["l4"]["TCP"]["flags"] == {"SYN": True, "ACK": True}
    assert data["time"] == "2023-11-14T22:13:20.123456789Z"
    back = json_format.Parse(line, observer_pb2.GetFlowsResponse())
    assert back == resp(SYN_ACK)


def hubble_flow_class():
    """flow.Flow as Hubble knows it: our .proto without the flowscope-only fields, in a pool of its own,
    so a strict protojson parse (no unknown keys allowed) behaves as Hubble's readers do."""
    from google.protobuf import any_pb2, descriptor_pb2, descriptor_pool, message_factory, timestamp_pb2

    pool = descriptor_pool.DescriptorPool()
    for dependency in (any_pb2, timestamp_pb2, wrappers_pb2):
        file_proto = descriptor_pb2.FileDescriptorProto()
        dependency.DESCRIPTOR.CopyToProto(file_proto)
        pool.Add(file_proto)
    file_proto = descriptor_pb2.FileDescriptorProto()
    flow_pb2.DESCRIPTOR.CopyToProto(file_proto)
    message = next(m for m in file_proto.message_type if m.name == "Flow")
    kept = [f for f in message.field if f.number < 1_000_000]
    del message.field[:]
    message.field.extend(kept)
    pool.Add(file_proto)
    return message_factory.GetMessageClass(pool.FindMessageTypeByName("flow.Flow"))


def test_json_lines_are_hubbles_unless_flowscope_fields_are_asked_for():
    flow = flow_pb2.Flow()
    flow.CopyFrom(HTTP_RESP)
    flow.counters.packets_forward, flow.counters.bytes_forward = 5, 800
    flow.l7_partial, flow.kernel_drop_reason = True, "NO_SOCKET"
    hubble_flow = hubble_flow_class()

    clean = json.loads(format_json(resp(flow)))
    assert not {"counters", "l7_partial", "kernel_drop_reason"} & set(clean["flow"])
    json_format.ParseDict(clean["flow"], hubble_flow())  # a strict Hubble parser takes it

    full = format_json(resp(flow), flowscope_fields=True)
    assert json.loads(full)["flow"]["counters"] == {"packets_forward": "5", "bytes_forward": "800"}
    try:
        json_format.ParseDict(json.loads(full)["flow"], hubble_flow())
    except json_format.ParseError as err:
        assert "counters" in str(err) or "l7_partial" in str(err)
    else:
        raise AssertionError("a strict Hubble parser must reject the flowscope fields")
    assert json_format.Parse(full, observer_pb2.GetFlowsResponse()) == resp(flow), "ours read them back"

    out = io.StringIO()
    printer = Printer("json", out, io.StringIO())
    printer.write(resp(flow))
    assert "counters" not in out.getvalue(), "-o json is Hubble's by default"


def test_dict_and_table():
    assert format_dict(resp(HTTP)).splitlines() == [
        "  TIMESTAMP: Nov 14 22:13:20.123",
        "     SOURCE: default/frontend-7d4f9:43210",
        "DESTINATION: default/backend-5c8b6:8080",
        "       TYPE: http-request",
        "    VERDICT: FORWARDED",
        "    SUMMARY: HTTP/1.1 GET http://backend:8080/users/1",
    ]
    out = io.StringIO()
    printer = Printer("table", out, io.StringIO())
    printer.write(resp(SYN))
    printer.write(resp(POLICY_DROP))
    printer.close()
    lines = out.getvalue().splitlines()
    assert lines[0].split() == ["TIMESTAMP", "SOURCE", "DESTINATION", "TYPE", "VERDICT", "SUMMARY"]
    assert [c.strip() for c in lines[2].split("   ") if c][3:] == ["Policy denied", "DROPPED", "TCP Flags: SYN"]
    assert len({line.index("SOURCE") if i == 0 else line.index("default/") for i, line in enumerate(lines)}) == 1


def test_dict_separates_flows_and_lost_events_go_to_stderr():
    out, err = io.StringIO(), io.StringIO()
    printer = Printer("dict", out, err)
    printer.write(resp(SYN))
    printer.write(observer_pb2.GetFlowsResponse(lost_events=flow_pb2.LostEvent(num_events_lost=3)))
    printer.write(resp(SYN))
    assert out.getvalue().count("------------\n") == 1
    assert "EVENTS LOST" in err.getvalue()


def test_followed_table_prints_the_header_once():
    out = io.StringIO()
    printer = Printer("table", out, io.StringIO())
    for flow in (SYN, POLICY_DROP):
        printer.write(resp(flow))
        printer.flush()
    lines = out.getvalue().splitlines()
    assert len(lines) == 3 and lines[0].startswith("TIMESTAMP") and "DROPPED" in lines[2]
