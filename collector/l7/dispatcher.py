"""Per-connection L7 state: detect the protocol of a connection, route its segments to the parser.

The datapath hands us a PREFIX of each TCP data segment or UDP datagram plus the segment's full
length. State is bounded: at most config.max_connections connections (least recently used evicted),
each with parsers whose buffers are bounded by the config. Nothing raises to the caller: parse
problems are counted in `stats` (per protocol and kind); an unexpected exception in a parser is
counted as kind "internal" and that connection's state is dropped.
"""

from __future__ import annotations

import logging
import socket
from collections import OrderedDict
from typing import Callable

from .dns import DnsParser
from .fqdn import FqdnCache
from .http1 import HeadCache, Http1Parser, looks_like_request, looks_like_response
from .http2 import PREFACE, Http2Parser
from .kafka import KafkaParser, TopicIds
from .types import ConnKey, L7Config, L7ParseError, L7Record, L7Stats

log = logging.getLogger(__name__)

_IGNORED = object()  # a TCP connection that carries nothing we parse
# The kernel's count also holds bytes sent before the protocol is known here (an HTTP/2 server's
# SETTINGS often arrive before the client's preface): a connection this close to the budget is done.
_PREAMBLE_SLACK = 256
EndpointOf = Callable[[str], "tuple[str, str] | None"]  # ip -> (namespace, pod name)


class L7Dispatcher:
    """Turns payload prefixes into L7Records. `endpoint_of` (optional) names the pod of a server IP so
    per-namespace/pod port rules apply; DNS answers feed `fqdn` (a FqdnCache, shared if given). `tls`:
    the payload is TLS plaintext (collector.tls), so HTTP/1 URLs are https:// like HTTP/2's :scheme."""

    def __init__(self, config: L7Config = L7Config(), fqdn: FqdnCache | None = None,
                 endpoint_of: EndpointOf | None = None, tls: bool = False) -> None:
        self.config = config
        self._http1_scheme = "https" if tls else "http"
        self.fqdn = fqdn if fqdn is not None else FqdnCache(max_ips=config.fqdn_max_ips)
        self.endpoint_of = endpoint_of
        self.stats = L7Stats()
        self.kafka_topic_ids = TopicIds()
        self.http_heads = HeadCache()  # HTTP/1 heads repeat across connections: parsed once
        self._conns: OrderedDict[ConnKey, object] = OrderedDict()
        self._streamed: dict[ConnKey, int] = {}  # payload bytes seen of whole-stream connections

    def on_segment(self, conn: ConnKey, from_client: bool, payload: bytes, segment_len: int,
                   ts_ns: int) -> list[L7Record]:
        """Records completed by this segment (payload = its first bytes, segment_len = its full length)."""
        self.stats.segments += 1
        if segment_len < len(payload):
            segment_len = len(payload)
        if not segment_len:
            return []
        conns = self._conns
        parser = conns.get(conn)
        if parser is None:
            parser = self._detect(conn, from_client, payload)
            if parser is None:
                return []
            conns[conn] = parser
            if len(conns) > self.config.max_connections:
                self._streamed.pop(conns.popitem(last=False)[0], None)
                self.stats.evicted_connections += 1
        else:
            conns.move_to_end(conn)
        if parser is _IGNORED:
            return []
        if conn in self._streamed:
            self._count_streamed(conn, parser.protocol, len(payload))
        try:
            records = parser.feed(from_client, payload, segment_len, ts_ns)
            if parser.replacement is not None:  # h2c upgrade: HTTP/2 continues the connection
                conns[conn] = parser.replacement
                if parser.leftover is not None:
                    data, length = parser.leftover
                    records += parser.replacement.feed(from_client, data, length, ts_ns)
        except L7ParseError as err:
            self.stats.error(parser.protocol, err.kind)
            return []
        except Exception:  # noqa: BLE001 - a parser bug must not stop the collector; counted, state dropped
            self.stats.error(parser.protocol, "internal")
            conns.pop(conn, None)
            self._streamed.pop(conn, None)
            return []
        for record in records:
            self.stats.records[record.protocol] += 1
            if record.is_reply and record.protocol == "dns":
                self.fqdn.observe(record.layer7.dns)
        return records

    def on_close(self, conn: ConnKey) -> None:
        """The connection ended (FIN/RST seen, or the datapath's conntrack entry expired)."""
        self._conns.pop(conn, None)
        self._streamed.pop(conn, None)

    def _stream_captured(self, conn: ConnKey) -> None:
        """The datapath captures this connection whole, up to stream_budget: Kafka (its ports are the
        datapath's stream ports) and HTTP/2 opened by the client preface. An h2c Upgrade or HTTP/2 joined
        mid-stream stays in prefix capture there, which has no budget."""
        if self.config.stream_budget:
            self._streamed[conn] = 0

    def _count_streamed(self, conn: ConnKey, protocol: str, captured: int) -> None:
        """The datapath stops capturing a whole-stream connection after stream_budget bytes (both
        directions): say so once, instead of letting its later requests vanish silently."""
        before = self._streamed[conn]
        self._streamed[conn] = before + captured
        budget = max(1, self.config.stream_budget - _PREAMBLE_SLACK)
        if before < budget <= before + captured:
            self.stats.budget_exhausted[protocol] += 1
            dark = self.stats.budget_exhausted[protocol]
            if dark == 1 or dark % 1000 == 0:
                log.warning("L7: %s connection %s:%d -> %s:%d reached the capture budget of %d bytes "
                            "(--l7-stream-budget): its later requests are not seen (%d connections so far)",
                            protocol, conn.client_ip, conn.client_port, conn.server_ip, conn.server_port,
                            self.config.stream_budget, dark)

    def __len__(self) -> int:
        return len(self._conns)

    def _ports(self, protocol: str, server_ip: str) -> frozenset[int]:
        if self.config.rules and self.endpoint_of is not None:
            endpoint = self.endpoint_of(server_ip)
            if endpoint is not None:
                return self.config.ports_for(protocol, endpoint[0], endpoint[1])
        return self.config.ports_for(protocol)

    def _detect(self, conn: ConnKey, from_client: bool, payload: bytes):
        port, ip = conn.server_port, conn.server_ip
        if conn.l4proto == socket.IPPROTO_UDP:
            # No close for UDP: only DNS gets state, so other datagrams cannot fill the table.
            return DnsParser(self.config, self.stats, tcp=False) if port in self._ports("dns", ip) else None
        if conn.l4proto != socket.IPPROTO_TCP:
            return None
        host = f"[{ip}]:{port}" if ":" in ip else f"{ip}:{port}"
        if port in self._ports("dns", ip):
            return DnsParser(self.config, self.stats, tcp=True)
        if port in self._ports("kafka", ip):
            self._stream_captured(conn)
            return KafkaParser(self.config, self.stats, ids=self.kafka_topic_ids)
        if from_client and payload and PREFACE.startswith(payload[:len(PREFACE)]):
            self._stream_captured(conn)
            return Http2Parser(self.config, self.stats, host, preface_expected=True)
        if port in self._ports("http2", ip):
            return Http2Parser(self.config, self.stats, host, preface_expected=False)
        if port in self._ports("http", ip):  # in sync from the start: anything but HTTP is counted
            return Http1Parser(self.config, self.stats, host, cache=self.http_heads, scheme=self._http1_scheme)
        if self.config.detect_http_by_payload and (
                looks_like_request(payload) if from_client else looks_like_response(payload)):
            return Http1Parser(self.config, self.stats, host, synced=False, cache=self.http_heads,
                               scheme=self._http1_scheme)
        # Servers may speak first (an HTTP/2 server's SETTINGS): the client's first bytes decide.
        return _IGNORED if from_client else None
