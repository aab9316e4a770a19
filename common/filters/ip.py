"""IP filters: source_ip, destination_ip, source_ip_xlated (IP or CIDR) and ip_version."""

from __future__ import annotations

import functools
import ipaddress

from common.filters.base import FilterError, FlowPredicate, enum_value, parse_ip_network
from proto.flow import flow_pb2


@functools.lru_cache(maxsize=65536)
def _address(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    # Flows repeat the same few thousand addresses; parsing once per address keeps CIDR checks cheap.
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None


def ip_matcher(field: str, values, get) -> FlowPredicate:
    networks = [parse_ip_network(field, v) for v in values]
    exact = {str(n.network_address) for n in networks if n.num_addresses == 1}
    cidrs = [n for n in networks if n.num_addresses > 1]

    def match(flow: flow_pb2.Flow) -> bool:
        text = get(flow)
        if not text:
            return False
        if text in exact:
            return True
        addr = _address(text)
        if addr is None:
            return False
        if str(addr) in exact:
            return True
        return any(addr.version == n.version and addr in n for n in cidrs)

    return match


def build(ff: flow_pb2.FlowFilter) -> list[FlowPredicate]:
    preds = []
    if ff.source_ip:
        preds.append(ip_matcher("source_ip", ff.source_ip, lambda f: f.IP.source))
    if ff.destination_ip:
        preds.append(ip_matcher("destination_ip", ff.destination_ip, lambda f: f.IP.destination))
    if ff.source_ip_xlated:
        preds.append(ip_matcher("source_ip_xlated", ff.source_ip_xlated, lambda f: f.IP.source_xlated))
    if ff.ip_version:
        for v in ff.ip_version:
            if v == flow_pb2.IP_NOT_USED:
                raise FilterError("ip_version", v, "expected IPv4 or IPv6")
        versions = {enum_value("ip_version", flow_pb2.IPVersion, v) for v in ff.ip_version}
        preds.append(lambda f: f.HasField("IP") and f.IP.ipVersion in versions)
    return preds
