"""The shapes the L7 dispatcher and its parsers share: connection key, record, config, stats, errors."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import NamedTuple

from proto.flow import flow_pb2

REDACTED = "HUBBLE_REDACTED"  # the value Hubble puts in place of a redacted header value


class ConnKey(NamedTuple):
    """One transport connection, oriented client -> server (socket.AF_INET / AF_INET6, IPPROTO_TCP / UDP)."""

    family: int
    client_ip: str
    client_port: int
    server_ip: str
    server_port: int
    l4proto: int


class L7Record:
    """One Hubble-shaped Layer7 event. `partial` = some fields could not be known (payload not seen,
    HPACK state unknown, response without its request); consumers should not count it as complete.

    A parser on a hot path may give the Layer7 as its serialized bytes (`encoded`) instead of a message:
    the decoder copies those bytes into the flow as they are, and `layer7` parses them on first use."""

    __slots__ = ("_layer7", "encoded", "is_reply", "summary", "partial", "protocol")

    def __init__(self, layer7: flow_pb2.Layer7 | None, is_reply: bool, summary: str, partial: bool = False,
                 protocol: str = "", encoded: bytes | None = None) -> None:
        if layer7 is None and encoded is None:
            raise ValueError("L7Record: expected a Layer7 message or its bytes")
        self._layer7 = layer7
        self.encoded = encoded
        self.is_reply = is_reply
        self.summary = summary
        self.partial = partial
        self.protocol = protocol  # "http", "http2", "dns", "kafka": which parser made it

    @property
    def layer7(self) -> flow_pb2.Layer7:
        if self._layer7 is None:
            self._layer7 = flow_pb2.Layer7.FromString(self.encoded)
        return self._layer7

    def layer7_bytes(self) -> bytes:
        """The Layer7 serialized (what a flow's l7 field holds)."""
        if self.encoded is None:
            self.encoded = self._layer7.SerializeToString()
        return self.encoded

    def __repr__(self) -> str:
        return (f"L7Record({self.protocol} {'reply' if self.is_reply else 'request'}{' partial' if self.partial else ''}: "
                f"{self.summary!r})")


@dataclass(frozen=True)
class PortRule:
    """Ports of one protocol for the servers of a namespace (and optionally one pod name prefix).
    A matching rule replaces the default ports of its protocol for that server."""

    protocol: str  # "http", "http2", "dns", "kafka"
    ports: frozenset[int]
    namespace: str
    pod_prefix: str = ""


PROTOCOLS = ("http", "http2", "dns", "kafka")


@dataclass(frozen=True)
class L7Config:
    """What to parse and how much memory a connection may hold. Defaults follow the issue texts."""

    http_ports: frozenset[int] = frozenset({80, 8080, 8000})
    http2_ports: frozenset[int] = frozenset()  # h2c by prior knowledge is detected by its preface anyway
    dns_ports: frozenset[int] = frozenset({53})
    kafka_ports: frozenset[int] = frozenset({9092})
    detect_http_by_payload: bool = True  # any TCP payload that starts like HTTP/1.x
    rules: tuple[PortRule, ...] = ()
    # Privacy, like Hubble's --hubble-redact-http-*: query strings dropped, header values replaced by
    # HUBBLE_REDACTED unless the (lower-case) header name is allowed. gRPC status headers are the
    # error signal of a call, so they are allowed by default.
    allow_url_query: bool = False
    header_allow: frozenset[str] = frozenset({"grpc-status", "grpc-message"})
    include_headers: bool = True
    max_headers: int = 32
    # Bounds: memory per collector is at most max_connections * (buffers below).
    max_connections: int = 16384
    max_header_bytes: int = 16384  # one HTTP/1 head, one HTTP/2 header block, one Kafka/DNS message prefix
    max_pending: int = 128  # requests awaiting a response, per connection
    h2_max_streams: int = 1024
    h2_max_header_list: int = 65536  # decoded size bound: HPACK bombs stop here
    h2_max_table_size: int = 65536
    kafka_max_message: int = 100 * 1024 * 1024
    fqdn_max_ips: int = 65536
    # Bytes per connection the datapath captures of whole-stream protocols (HTTP/2, Kafka; its l7_budget):
    # past it the kernel sends nothing more, so the dispatcher says so (0: no budget).
    stream_budget: int = 0

    def ports_for(self, protocol: str, namespace: str = "", pod: str = "") -> frozenset[int]:
        """Ports of `protocol` for a server in namespace/pod: the most specific matching rule, else defaults."""
        best: PortRule | None = None
        for rule in self.rules:
            if rule.protocol != protocol or rule.namespace != namespace or not pod.startswith(rule.pod_prefix):
                continue
            if best is None or len(rule.pod_prefix) > len(best.pod_prefix):
                best = rule
        if best is not None:
            return best.ports
        return getattr(self, f"{protocol}_ports")


@dataclass
class L7Stats:
    """Counters of the dispatcher: records and parse errors per protocol, evicted connections."""

    records: Counter = field(default_factory=Counter)  # protocol -> records
    parse_errors: Counter = field(default_factory=Counter)  # protocol -> errors
    errors_by_kind: Counter = field(default_factory=Counter)  # (protocol, kind) -> errors
    evicted_connections: int = 0
    segments: int = 0
    budget_exhausted: Counter = field(default_factory=Counter)  # protocol -> connections gone dark

    def error(self, protocol: str, kind: str) -> None:
        self.parse_errors[protocol] += 1
        self.errors_by_kind[(protocol, kind)] += 1


class L7ParseError(Exception):
    """A payload a parser cannot make sense of; `kind` names the problem in stats.errors_by_kind."""

    kind = "malformed"


class Truncated(L7ParseError):
    kind = "truncated"


class Oversized(L7ParseError):
    kind = "oversized"


class BadLength(L7ParseError):
    kind = "bad_length"


class UnmatchedResponse(L7ParseError):
    kind = "response_without_request"
