"""Fuzz GetFlows request parsing (collector/observer/request.py and the filters it builds in
common/filters): any bytes a client sends decode to a query or to a typed refusal (INVALID_ARGUMENT),
and the built predicate runs on flows without raising."""

import atheris

with atheris.instrument_imports(include=["collector.observer.request", "common.filters", "common.patterns"]):
    from google.protobuf.message import DecodeError

    from collector.observer.request import parse_request
    from common.errors import UserError
    from proto.flow import flow_pb2
    from proto.observer import observer_pb2

from tests.common.filters.sample import make_flow
from tests.fuzz.engine import run

FLOWS = [make_flow(), make_flow(proto="UDP", dport=53, l7=flow_pb2.Layer7(dns=flow_pb2.DNS(query="a.test."))),
         make_flow(l7=flow_pb2.Layer7(http=flow_pb2.HTTP(method="GET", url="http://b/x?y=1", code=503))),
         make_flow(src_ip="fd00::1", dst_ip="fd00::2", proto="ICMPv6")]


def _seed() -> bytes:
    request = observer_pb2.GetFlowsRequest(number=20, follow=True)
    request.since.FromNanoseconds(1_700_000_000 * 10**9)
    request.whitelist.add(source_pod=["default/frontend"], destination_port=["8080"], verdict=[flow_pb2.FORWARDED],
                          http_status_code=["5+"], http_url=["/x.*"], source_label=["k8s:app in (frontend, web)"])
    request.whitelist.add(destination_fqdn=["*.test"], protocol=["udp"], ip_version=[flow_pb2.IPv4],
                          source_ip=["10.244.0.0/16"], tcp_flags=[flow_pb2.TCPFlags(SYN=True)])
    request.blacklist.add(node_name=["node-*"], traffic_direction=[flow_pb2.EGRESS])
    request.field_mask.paths.extend(["time", "source.pod_name", "l4"])
    return request.SerializeToString()


SEEDS = [_seed()]


def one_input(data: bytes) -> None:
    try:
        request = observer_pb2.GetFlowsRequest.FromString(data)
    except DecodeError:
        return
    try:
        query = parse_request(request)
    except UserError:   # RequestError, FilterError, PatternError: INVALID_ARGUMENT with their message
        return
    for flow in FLOWS:
        query.match(flow)


def main() -> None:
    run(one_input, SEEDS)


if __name__ == "__main__":
    main()
