"""The datapath's event (bpf/flowscope.h `struct flow_event`) as Python sees it: one struct format,
the constants the C side uses, and nothing else. Keep in step with the header (FLOW_EVENT_SIZE)."""

from __future__ import annotations

import struct
from typing import NamedTuple

# Where the packet was seen (also the policy hook's direction numbers).
OBS_TO_POD = 1
OBS_FROM_POD = 2

EV_NONE, EV_NEW, EV_REPLY, EV_FLAGS, EV_UPDATE, EV_PACKET, EV_DROP, EV_END = range(8)
KIND_NAMES = ("payload", "new", "reply", "flags", "update", "packet", "drop", "end")

VERDICT_FORWARDED = 1
VERDICT_DROPPED = 2
VERDICT_AUDIT = 4

L7_OFF, L7_PREFIX, L7_STREAM = 0, 1, 2

POLICY_ACTION_ALLOW = 0
POLICY_ACTION_DENY = 1
POLICY_ACTION_DENY_EXPLICIT = 2

# Aggregation levels as the CLI names them -> the AGGREGATION cflag.
AGGREGATION_LEVELS = {"none": 0, "medium": 1, "max": 2}

FLOW_EVENT_SIZE = 120
EVENT = struct.Struct("<6Q16s16s4I4H12BI")
assert EVENT.size == FLOW_EVENT_SIZE


class FlowEvent(NamedTuple):
    """Field order is the C struct's."""

    ts_ns: int
    first_seen_ns: int
    packets_fwd: int
    bytes_fwd: int
    packets_rev: int
    bytes_rev: int
    saddr: bytes
    daddr: bytes
    ifindex: int
    skb_len: int
    policy_id: int
    remote_identity: int
    sport: int
    dport: int
    payload_off: int
    cap_len: int
    family: int
    proto: int
    kind: int
    obs: int
    is_reply: int
    tcp_flags: int
    verdict: int
    policy_action: int
    policy_match: int
    l7: int
    flags_fwd: int
    flags_rev: int
    seg_len: int


_new_event = tuple.__new__  # FlowEvent._make without its Python-level call (this runs for every event)


def unpack_event(raw: bytes) -> FlowEvent:
    """Raises struct.error (a typed decode error the caller counts) if `raw` is shorter than the struct."""
    return _new_event(FlowEvent, EVENT.unpack_from(raw))
