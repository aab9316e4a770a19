"""Port ranges as the policy_rules trie stores them: per (endpoint, peer, direction, protocol) group,
disjoint intervals with deny already cut out of allow (a trie returns only its longest match, so
precedence must be settled before writing), each interval split into aligned port prefixes."""

from __future__ import annotations

import heapq
from dataclasses import dataclass

PORT_BITS = 16
PORT_MAX = 65535
# policy_rules values (bpf/policy.h POLICY_RULE_*)
RULE_ALLOW = 1
RULE_DENY = 2


@dataclass(frozen=True, order=True)
class PortRule:
    """One compiled rule on a port interval [lo, hi] (0-65535 = any port)."""

    lo: int
    hi: int
    action: int      # RULE_ALLOW / RULE_DENY
    policy_id: int


@dataclass(frozen=True)
class PortPrefix:
    port: int
    bits: int        # prefix length over the 16 port bits (0 = any port)
    action: int
    policy_id: int


def resolve(rules: list[PortRule]) -> list[PortRule]:
    """Disjoint intervals covering what `rules` cover: a port is denied if any deny rule covers it,
    otherwise allowed by the lowest-id allow rule covering it. A sweep over interval ends with lazy
    heaps, so thousands of rules in one group stay fast."""
    starts = sorted(rules, key=lambda r: r.lo)
    cuts = sorted({r.lo for r in rules} | {r.hi + 1 for r in rules})
    active: dict[bool, list[tuple[int, int]]] = {True: [], False: []}  # is_deny -> heap of (policy_id, hi)
    out: list[PortRule] = []
    i = 0
    for lo, nxt in zip(cuts, cuts[1:]):
        while i < len(starts) and starts[i].lo <= lo:
            heapq.heappush(active[starts[i].action == RULE_DENY], (starts[i].policy_id, starts[i].hi))
            i += 1
        best = None
        for is_deny in (True, False):
            heap = active[is_deny]
            while heap and heap[0][1] < lo:
                heapq.heappop(heap)
            if heap and best is None:
                best = (RULE_DENY if is_deny else RULE_ALLOW, heap[0][0])
        if best is None:
            continue
        hi = nxt - 1
        if out and out[-1].hi + 1 == lo and (out[-1].action, out[-1].policy_id) == best:
            out[-1] = PortRule(out[-1].lo, hi, *best)
        else:
            out.append(PortRule(lo, hi, *best))
    return out


def prefixes(lo: int, hi: int) -> list[tuple[int, int]]:
    """[lo, hi] as the fewest aligned (port, prefix bits) blocks: at most 30 for any range."""
    out = []
    while lo <= hi:
        size = lo & -lo if lo else 1 << PORT_BITS
        while size > hi - lo + 1:
            size >>= 1
        out.append((lo, PORT_BITS - size.bit_length() + 1))
        lo += size
    return out


def compile_group(rules: list[PortRule]) -> list[PortPrefix]:
    return [PortPrefix(port, bits, r.action, r.policy_id)
            for r in resolve(rules) for port, bits in prefixes(r.lo, r.hi)]
