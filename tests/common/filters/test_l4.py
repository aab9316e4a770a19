"""port, protocol and tcp_flags filters."""
import pytest

from common.filters import FilterError, build_filter
from proto.flow import flow_pb2
from tests.common.filters.sample import dns_flow, http_flow, make_flow, matches

TCP = make_flow(sport=43210, dport=8080, flags=("SYN", "ACK"))
UDP = make_flow(proto="UDP", sport=5353, dport=53)
ICMP4 = make_flow(proto="ICMPv4")
ICMP6 = make_flow("fd00::1", "fd00::2", proto="ICMPv6")
DNS = dns_flow()
HTTP = http_flow()
KAFKA = make_flow(l7=flow_pb2.Layer7(kafka=flow_pb2.Kafka(topic="orders")))


@pytest.mark.parametrize("flow, fields, expected", [
    (TCP, dict(destination_port=["8080"]), True),
    (TCP, dict(destination_port=["80", "8080"]), True),
    (TCP, dict(destination_port=["43210"]), False),
    (TCP, dict(source_port=["43210"]), True),
    (UDP, dict(destination_port=["53"]), True),
    (ICMP4, dict(destination_port=["0"]), False),
    (TCP, dict(protocol=["tcp"]), True),
    (TCP, dict(protocol=["TCP"]), True),
    (TCP, dict(protocol=["udp"]), False),
    (UDP, dict(protocol=["udp", "icmp"]), True),
    (ICMP4, dict(protocol=["icmp"]), True),
    (ICMP6, dict(protocol=["icmp"]), True),
    (ICMP4, dict(protocol=["icmpv6"]), False),
    (ICMP6, dict(protocol=["icmpv6"]), True),
    (DNS, dict(protocol=["dns"]), True),
    (DNS, dict(protocol=["udp"]), True),
    (UDP, dict(protocol=["dns"]), False),
    (HTTP, dict(protocol=["http"]), True),
    (HTTP, dict(protocol=["dns", "kafka"]), False),
    (KAFKA, dict(protocol=["kafka"]), True),
    (TCP, dict(tcp_flags=[flow_pb2.TCPFlags(SYN=True)]), True),
    (TCP, dict(tcp_flags=[flow_pb2.TCPFlags(SYN=True, ACK=True)]), True),
    (TCP, dict(tcp_flags=[flow_pb2.TCPFlags(SYN=True, FIN=True)]), False),
    (TCP, dict(tcp_flags=[flow_pb2.TCPFlags(FIN=True), flow_pb2.TCPFlags(ACK=True)]), True),
    (UDP, dict(tcp_flags=[flow_pb2.TCPFlags(SYN=True)]), False),
])
def test_l4_filters(flow, fields, expected):
    assert matches(flow, **fields) is expected


@pytest.mark.parametrize("fields, field", [
    (dict(source_port=["http"]), "source_port"),
    (dict(destination_port=["65536"]), "destination_port"),
    (dict(destination_port=["-1"]), "destination_port"),
    (dict(destination_port=["８０"]), "destination_port"),  # non-ASCII digits
    (dict(protocol=["quic"]), "protocol"),
    (dict(protocol=[""]), "protocol"),
    (dict(tcp_flags=[flow_pb2.TCPFlags()]), "tcp_flags"),
])
def test_bad_l4_filters(fields, field):
    with pytest.raises(FilterError) as err:
        build_filter(flow_pb2.FlowFilter(**fields))
    assert err.value.field == field
