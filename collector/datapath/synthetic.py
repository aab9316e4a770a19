"""Synthetic datapath events — the bytes the TC program writes, every field defaulted — and a decoder over
one pod, for the decoder's tests and bench/datapath.py (no kernel needed)."""

from __future__ import annotations

import ipaddress

from collector.datapath import Decoder, Enricher
from collector.datapath import events as ev
from collector.identity import IdentityAllocator
from collector.l7 import L7Dispatcher
from common.endpoints import Endpoint, EndpointCache
from proto.flow import flow_pb2

POD = Endpoint(namespace="shop", pod_name="web-1", ips=("10.244.0.2",), labels={"app": "web"},
               workload_name="web", workload_kind="Deployment", device="lxc1", ifindex=7)


class Policies:
    """Names policy id N "pN" in namespace shop, as the enforcer's registry would."""

    def policy_for_id(self, policy_id: int) -> flow_pb2.Policy | None:
        return flow_pb2.Policy(name=f"p{policy_id}", namespace="shop", kind="NetworkPolicy") if policy_id else None


def decoder() -> Decoder:
    """A decoder that knows POD and nothing else (other addresses are world)."""
    cache = EndpointCache()
    cache.replace([POD])
    return Decoder(Enricher(cache, IdentityAllocator()), "node-1", l7=L7Dispatcher(), policies=Policies())


def event(**fields) -> bytes:
    """One packed flow event: a new TCP connection from POD to 192.0.2.9:443 unless `fields` say otherwise."""
    base = dict(ts_ns=2_000_000_000, first_seen_ns=1_000_000_000, packets_fwd=1, bytes_fwd=74, packets_rev=0,
                bytes_rev=0, saddr=ipaddress.ip_address("10.244.0.2").packed.ljust(16, b"\0"),
                daddr=ipaddress.ip_address("192.0.2.9").packed.ljust(16, b"\0"), ifindex=7, skb_len=74,
                policy_id=0, remote_identity=0, sport=40000, dport=443, payload_off=0, cap_len=0, family=4,
                proto=6, kind=ev.EV_NEW, obs=ev.OBS_FROM_POD, is_reply=0, tcp_flags=0x02,
                verdict=ev.VERDICT_FORWARDED, policy_action=0, policy_match=0, l7=0, flags_fwd=0x02, flags_rev=0,
                seg_len=0)
    base.update(fields)
    return ev.EVENT.pack(*ev.FlowEvent(**base))
