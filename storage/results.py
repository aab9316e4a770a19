"""What the queries return: plain dataclasses (times in ns since the epoch, latencies in ns)."""

from __future__ import annotations

import dataclasses
from typing import Optional


@dataclasses.dataclass(frozen=True)
class MapNode:
    id: str  # "namespace/workload" for pods, "<kind>:<name>" otherwise (world:api.example.com, host:host)
    namespace: str
    workload: str
    kind: str  # pod, world, host, remote-node, kube-apiserver, ...
    flows_in: int = 0
    flows_out: int = 0


@dataclasses.dataclass(frozen=True)
class MapEdge:
    source: str  # MapNode.id of the client
    target: str  # MapNode.id of the server
    port: int  # server port (0 for ICMP)
    protocol: str  # TCP, UDP, ICMPv4, ICMPv6, SCTP, or "" when unknown
    verdict: str  # FORWARDED, DROPPED, AUDIT, ...
    flows: int
    bytes: int
    requests: int  # L7 responses seen (HTTP, DNS, Kafka)
    errors: int  # HTTP 5xx, DNS rcode != 0 (but NXDOMAIN to search-list expansions), Kafka error_code != 0
    error_rate: float  # errors / requests (0.0 without L7)
    p50_ns: Optional[float]
    p95_ns: Optional[float]
    p99_ns: Optional[float]
    l7: tuple[str, ...] = ()  # L7 protocols seen on the edge: "http", "dns", "kafka"
    target_ips: tuple[str, ...] = ()  # up to 8 addresses of a non-pod server (world, host ...)

    @property
    def key(self) -> tuple[str, str, int, str, str]:
        return (self.source, self.target, self.port, self.protocol, self.verdict)


@dataclasses.dataclass(frozen=True)
class ServiceMap:
    since_ns: int
    until_ns: int
    nodes: list[MapNode]
    edges: list[MapEdge]


@dataclasses.dataclass(frozen=True)
class ServiceMapChanges:
    """A window and the window of the same length just before it."""

    current: ServiceMap
    previous: ServiceMap
    added: list[MapEdge]  # edges of `current` whose key is not in `previous`
    removed: list[MapEdge]  # edges of `previous` whose key is not in `current`


@dataclasses.dataclass(frozen=True)
class Talker:
    source: str  # MapNode.id
    target: str
    flows: int
    bytes: int


@dataclasses.dataclass(frozen=True)
class DropCount:
    reason: str  # DropReason name (POLICY_DENIED ...)
    reason_code: int
    kernel_reason: str  # flowscope's kernel drop reason name, "" if none
    flows: int


@dataclasses.dataclass(frozen=True)
class RedPoint:
    """HTTP RED of one server workload in one step."""

    time_ns: int
    namespace: str
    workload: str
    requests: int
    rate: float  # requests per second over the step
    errors: int  # 5xx
    client_errors: int  # 4xx
    error_ratio: float
    p50_ns: Optional[float]
    p95_ns: Optional[float]
    p99_ns: Optional[float]


@dataclasses.dataclass(frozen=True)
class DnsPoint:
    """DNS of one client workload in one step."""

    time_ns: int
    namespace: str
    workload: str
    queries: int
    responses: int
    nxdomain: int
    errors: int  # rcode != 0 (NXDOMAIN included)
    p50_ns: Optional[float]
    p95_ns: Optional[float]
    p99_ns: Optional[float]


@dataclasses.dataclass(frozen=True)
class DnsQuery:
    query: str
    queries: int
    nxdomain: int
    errors: int


@dataclasses.dataclass(frozen=True)
class DnsSummary:
    series: list[DnsPoint]
    top_queries: list[DnsQuery]


@dataclasses.dataclass(frozen=True)
class NodeSeen:
    name: str
    flows: int
    first_ns: int
    last_ns: int


@dataclasses.dataclass(frozen=True)
class FlowPage:
    """One page of the UI's flow table: `rows` are dicts of TABLE_COLUMNS, `total` all matches."""

    total: int
    offset: int
    rows: list[dict]
