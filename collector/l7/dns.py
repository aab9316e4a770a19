"""DNS over UDP and TCP (2-byte length prefix), decoded with dnspython's wire-format parser.

Queries and responses match by message id (and question) within a connection, which gives the
latency. A message we saw only in part (longer than the payload prefix) is parsed for its header and
question only and marked partial. Answers feed the FqdnCache.
"""

from __future__ import annotations

from collections import OrderedDict

import dns.flags
import dns.message
import dns.rcode
import dns.rdataclass
import dns.rdatatype

from proto.flow import flow_pb2

from .stream import unseen_bytes
from .types import L7Config, L7Record, L7Stats

_ADDRESS_TYPES = (dns.rdatatype.A, dns.rdatatype.AAAA)
_HEADER_LEN = 12


def _parse(wire: bytes, complete: bool) -> tuple[dns.message.Message | None, bool]:
    """(message, partial). dnspython raises many exception types on hostile input: all mean 'malformed'."""
    if complete:
        try:
            return dns.message.from_wire(wire, ignore_trailing=True), False
        except Exception:  # noqa: BLE001 - any failure of the full parse falls back to the question
            pass
    try:
        return dns.message.from_wire(wire, question_only=True, ignore_trailing=True), True
    except Exception:  # noqa: BLE001 - the caller counts it as a parse error
        return None, True


def _summary_types(qtypes: list[str]) -> str:
    return ",".join(qtypes)


class DnsParser:
    """One DNS 'connection' (a UDP 5-tuple or a TCP connection)."""

    protocol = "dns"
    replacement = None
    leftover = None

    def __init__(self, config: L7Config, stats: L7Stats, tcp: bool) -> None:
        self.config = config
        self.stats = stats
        self.tcp = tcp
        self.pending: OrderedDict[tuple, int] = OrderedDict()  # (id, qname, qtype) -> query ts
        # TCP stream state per direction: bytes of the current length prefix + message, and how many
        # bytes of the current message are still to come (seen or not).
        self.bufs = {True: bytearray(), False: bytearray()}
        self.need = {True: 0, False: 0}
        self.unseen = {True: False, False: False}

    def feed(self, from_client: bool, payload: bytes, segment_len: int, ts_ns: int) -> list[L7Record]:
        out: list[L7Record] = []
        if not self.tcp:
            self._message(from_client, payload, segment_len <= len(payload), ts_ns, out)
            return out
        buf = self.bufs[from_client]
        missing = unseen_bytes(payload, segment_len)
        pos, n = 0, len(payload)
        while pos < n or missing:
            if self.need[from_client] == 0:  # reading the 2-byte length
                if pos >= n:
                    self.stats.error(self.protocol, "lost_sync")
                    buf.clear()  # a length we did not see: the next segment starts a message, we hope
                    return out
                buf.append(payload[pos])
                pos += 1
                if len(buf) == 2:
                    self.need[from_client] = int.from_bytes(buf, "big")
                    buf.clear()
                    self.unseen[from_client] = False
                    if self.need[from_client] < _HEADER_LEN:
                        self.stats.error(self.protocol, "bad_length")
                        self.need[from_client] = 0
                        return out
                continue
            take = min(self.need[from_client], n - pos)
            if len(buf) + take <= self.config.max_header_bytes:
                buf += payload[pos:pos + take]
            else:
                self.unseen[from_client] = True
            pos += take
            self.need[from_client] -= take
            if self.need[from_client] and pos >= n:
                skip = min(self.need[from_client], missing)
                if skip:
                    self.unseen[from_client] = True
                missing -= skip
                self.need[from_client] -= skip
                if self.need[from_client]:
                    return out
            if self.need[from_client] == 0:
                self._message(from_client, bytes(buf), not self.unseen[from_client], ts_ns, out)
                buf.clear()
        return out

    def _message(self, from_client: bool, wire: bytes, complete: bool, ts_ns: int, out: list[L7Record]) -> None:
        msg, partial = _parse(wire, complete)
        if msg is None:
            self.stats.error(self.protocol, "truncated" if not complete else "malformed")
            return
        if partial and complete:
            self.stats.error(self.protocol, "malformed")
        qname = msg.question[0].name.to_text() if msg.question else ""
        qtypes = [dns.rdatatype.to_text(q.rdtype) for q in msg.question]
        key = (msg.id, qname.lower(), qtypes[0] if qtypes else "")
        is_response = bool(msg.flags & dns.flags.QR)
        if not is_response:
            self.pending[key] = ts_ns
            if len(self.pending) > self.config.max_pending:
                self.pending.popitem(last=False)
            record = flow_pb2.DNS(query=qname, qtypes=qtypes)
            layer7 = flow_pb2.Layer7(type=flow_pb2.REQUEST, dns=record)
            out.append(L7Record(layer7, False, f"DNS Query {qname} {_summary_types(qtypes)}", partial,
                                self.protocol))
            return
        query_ts = self.pending.pop(key, None)
        record = flow_pb2.DNS(query=qname, qtypes=qtypes, rcode=msg.rcode())
        ttls = []
        for rrset in msg.answer:
            record.rrtypes.append(dns.rdatatype.to_text(rrset.rdtype))
            ttls.append(rrset.ttl)
            if rrset.rdtype in _ADDRESS_TYPES and rrset.rdclass == dns.rdataclass.IN:
                # A/AAAA of another class (CH, HS, a number) have no address layout: generic rdata
                record.ips.extend(rd.address for rd in rrset)
            elif rrset.rdtype == dns.rdatatype.CNAME:
                record.cnames.extend(rd.target.to_text() for rd in rrset)
        record.ttl = min(ttls) if ttls else 0
        latency = ts_ns - query_ts if query_ts is not None else 0
        layer7 = flow_pb2.Layer7(type=flow_pb2.RESPONSE, latency_ns=max(latency, 0), dns=record)
        out.append(L7Record(layer7, True, _answer_summary(record), partial, self.protocol))


def _answer_summary(record: flow_pb2.DNS) -> str:
    """Hubble's words: DNS Answer "10.0.0.1" TTL: 300 (Query a.test. A), or RCode: NXDomain."""
    if record.rcode != 0:
        answer = f"RCode: {dns.rcode.to_text(record.rcode)}"
    else:
        answer = '"' + ",".join(list(record.ips) or list(record.cnames)) + f'" TTL: {record.ttl}'
    return f"DNS Answer {answer} (Query {record.query} {_summary_types(list(record.qtypes))})"
