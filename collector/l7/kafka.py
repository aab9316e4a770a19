"""Kafka: request and response headers, topic and error code for Produce, Fetch and Metadata.

Every Kafka message is a 4-byte size and a body; we read the first part of each body (bounded) and
skip the rest by count, so unseen bytes and big record batches cost nothing. Responses match requests
by correlation id. Flexible versions (KIP-482: compact strings and arrays, tagged fields) are decoded
for the versions that introduced them. A size that lies (negative, larger than the configured bound,
shorter than a header) is counted and we wait for a segment that starts like a message again.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

from proto.flow import flow_pb2

from .stream import consume, unseen_bytes
from .types import L7Config, L7ParseError, L7Record, L7Stats, Truncated, UnmatchedResponse

# Hubble's names (cilium pkg/kafka) by api key.
API_KEYS = {
    0: "produce", 1: "fetch", 2: "offsets", 3: "metadata", 4: "leaderandisr", 5: "stopreplica",
    6: "updatemetadata", 7: "controlledshutdown", 8: "offsetcommit", 9: "offsetfetch",
    10: "findcoordinator", 11: "joingroup", 12: "heartbeat", 13: "leavegroup", 14: "syncgroup",
    15: "describegroups", 16: "listgroups", 17: "saslhandshake", 18: "apiversions", 19: "createtopics",
    20: "deletetopics", 21: "deleterecords", 22: "initproducerid", 23: "offsetforleaderepoch",
    24: "addpartitionstotxn", 25: "addoffsetstotxn", 26: "endtxn", 27: "writetxnmarkers",
    28: "txnoffsetcommit", 29: "describeacls", 30: "createacls", 31: "deleteacls", 32: "describeconfigs",
    33: "alterconfigs", 36: "saslauthenticate", 37: "createpartitions", 42: "deletegroups",
}
# First flexible version per api key (from the Kafka protocol's JSON message definitions).
FIRST_FLEXIBLE = {
    0: 9, 1: 12, 2: 6, 3: 9, 8: 8, 9: 6, 10: 3, 11: 6, 12: 4, 13: 4, 14: 4, 15: 5, 16: 3, 18: 3, 19: 5,
    20: 4, 21: 2, 22: 2, 23: 4, 24: 3, 25: 3, 26: 3, 27: 1, 28: 3, 29: 2, 30: 2, 31: 2, 32: 4, 33: 2,
    36: 2, 37: 2, 42: 2,
}
PRODUCE, FETCH, METADATA, APIVERSIONS = 0, 1, 3, 18
_MAX_API_KEY = 100
_MAX_API_VERSION = 30
_HEAD = 4096  # bytes of a message body we keep: headers and the first topic are near the start

# Per-direction states.
K_SIZE, K_BODY, K_RESYNC = range(3)


class _Reader:
    """Kafka primitive types over a byte prefix; reading past its end raises Truncated."""

    __slots__ = ("data", "pos")

    def __init__(self, data: bytes, pos: int = 0) -> None:
        self.data = data
        self.pos = pos

    def take(self, n: int) -> bytes:
        if n < 0:
            raise L7ParseError(f"negative length {n}")
        end = self.pos + n
        if end > len(self.data):
            raise Truncated(f"need {n} bytes at {self.pos}")
        chunk = self.data[self.pos:end]
        self.pos = end
        return chunk

    def int(self, size: int) -> int:
        return int.from_bytes(self.take(size), "big", signed=True)

    def uvarint(self) -> int:
        value = shift = 0
        while True:
            byte = self.take(1)[0]
            value |= (byte & 0x7F) << shift
            if not byte & 0x80:
                return value
            shift += 7
            if shift > 28:
                raise L7ParseError("varint too long")

    def string(self, flexible: bool) -> str | None:
        n = self.uvarint() - 1 if flexible else self.int(2)
        return None if n < 0 else self.take(n).decode("utf-8", "replace")

    def array_len(self, flexible: bool) -> int:
        n = self.uvarint() - 1 if flexible else self.int(4)
        if n > len(self.data):  # every element takes at least a byte: a larger count lies
            raise L7ParseError(f"array of {n} elements in {len(self.data)} bytes")
        return n

    def tags(self, flexible: bool) -> None:
        if flexible:
            for _ in range(self.uvarint()):
                self.uvarint()
                self.take(self.uvarint())


@dataclass(slots=True)
class _Request:
    api_key: int
    api_version: int
    correlation_id: int
    client_id: str
    topic: str
    ts_ns: int


class _Direction:
    __slots__ = ("state", "buf", "size", "remaining", "lost")

    def __init__(self) -> None:
        self.state = K_SIZE
        self.buf = bytearray()
        self.size = 0
        self.remaining = 0
        self.lost = False


class TopicIds:
    """Topic id -> name, learned from Metadata responses (v10+). Produce v13+ and Fetch v13+ name topics
    only by id; the Metadata that named them may have crossed another connection, so the dispatcher
    shares one bounded map between its Kafka connections."""

    def __init__(self, capacity: int = 4096) -> None:
        self.capacity = capacity
        self._names: OrderedDict[bytes, str] = OrderedDict()

    def learn(self, topic_id: bytes, name: str) -> None:
        if name and any(topic_id):
            self._names.pop(topic_id, None)
            self._names[topic_id] = name
            if len(self._names) > self.capacity:
                self._names.popitem(last=False)

    def name(self, topic_id: bytes) -> str:
        return self._names.get(topic_id, "")


def request_topic(r: _Reader, api_key: int, version: int, flexible: bool, ids: TopicIds) -> str:
    """The first topic named in a Produce, Fetch or Metadata request body ("" if none)."""
    by_id = False
    if api_key == PRODUCE:
        if version >= 3:
            r.string(flexible)  # transactional_id
        r.take(6)  # acks, timeout
        by_id = version >= 13
    elif api_key == FETCH:
        r.take(12 if version < 15 else 8)  # replica_id (until v15), max_wait, min_bytes
        if version >= 3:
            r.take(4)  # max_bytes
        if version >= 4:
            r.take(1)  # isolation_level
        if version >= 7:
            r.take(8)  # session_id, session_epoch
        by_id = version >= 13
    elif api_key == METADATA:
        if version >= 10:
            if r.array_len(flexible) <= 0:
                return ""
            topic_id = r.take(16)
            return r.string(flexible) or ids.name(topic_id)
    else:
        return ""
    if r.array_len(flexible) <= 0:
        return ""
    return ids.name(r.take(16)) if by_id else (r.string(flexible) or "")


def _metadata_topics(r: _Reader, version: int, flexible: bool, ids: TopicIds) -> tuple[str, int]:
    """First topic and its error of a Metadata response; from v10 every topic's id is learned too."""
    if version >= 3:
        r.take(4)  # throttle_time_ms
    for _ in range(r.array_len(flexible)):  # brokers
        r.take(4)
        r.string(flexible)
        r.take(4)
        if version >= 1:
            r.string(flexible)  # rack
        r.tags(flexible)
    if version >= 2:
        r.string(flexible)  # cluster_id
    if version >= 1:
        r.take(4)  # controller_id
    count = r.array_len(flexible)
    if count <= 0:
        return "", 0
    first = ("", 0)
    for i in range(count):
        error = r.int(2)
        name = r.string(flexible) or ""
        if i == 0:
            first = (name, error)
        if version < 10:
            break
        ids.learn(r.take(16), name)
        try:  # the rest only leads to the next topic: stop quietly where the kept prefix ends
            r.take(1)  # is_internal
            for _ in range(r.array_len(flexible)):  # partitions
                r.take(14 if version >= 7 else 10)  # error, index, leader (, leader_epoch)
                for _ in range(3 if version >= 5 else 2):  # replicas, isr (, offline replicas)
                    r.take(4 * max(r.array_len(flexible), 0))
                r.tags(flexible)
            if version >= 8:
                r.take(4)  # topic_authorized_operations
            r.tags(flexible)
        except Truncated:
            break
    return first


def response_topic_error(r: _Reader, api_key: int, version: int, flexible: bool,
                         ids: TopicIds) -> tuple[str, int]:
    """(first topic, its error code, or the response's own) from the start of a response body."""
    if api_key == APIVERSIONS:
        return "", r.int(2)
    if api_key == PRODUCE:
        if r.array_len(flexible) <= 0:
            return "", 0
        topic = ids.name(r.take(16)) if version >= 13 else (r.string(flexible) or "")
        if r.array_len(flexible) <= 0:
            return topic, 0
        r.take(4)  # partition index
        return topic, r.int(2)
    if api_key == FETCH:
        error = 0
        if version >= 1:
            r.take(4)  # throttle_time_ms
        if version >= 7:
            error = r.int(2)
            r.take(4)  # session_id
        if r.array_len(flexible) <= 0:
            return "", error
        topic = ids.name(r.take(16)) if version >= 13 else (r.string(flexible) or "")
        if r.array_len(flexible) > 0:
            r.take(4)
            error = error or r.int(2)
        return topic, error
    if api_key == METADATA:
        return _metadata_topics(r, version, flexible, ids)
    return "", 0


class KafkaParser:
    """One Kafka connection (client -> broker)."""

    protocol = "kafka"
    replacement = None
    leftover = None

    def __init__(self, config: L7Config, stats: L7Stats, synced: bool = True,
                 ids: TopicIds | None = None) -> None:
        self.config = config
        self.stats = stats
        self.ids = ids if ids is not None else TopicIds()
        self.client = _Direction()
        self.server = _Direction()
        if not synced:
            self.client.state = self.server.state = K_RESYNC
        self.pending: OrderedDict[int, _Request] = OrderedDict()

    def feed(self, from_client: bool, payload: bytes, segment_len: int, ts_ns: int) -> list[L7Record]:
        d = self.client if from_client else self.server
        out: list[L7Record] = []
        n, pos = len(payload), 0
        missing = unseen_bytes(payload, segment_len)
        if d.state == K_RESYNC:
            if not self._plausible(payload, from_client):
                return out
            d.state = K_SIZE
            d.buf.clear()
        while True:
            if d.state == K_BODY:
                start = pos
                pos, d.remaining, missing, _ = consume(d.remaining, pos, n, missing)
                keep = min(pos - start, _HEAD - len(d.buf))
                if keep > 0:
                    d.buf += payload[start:start + keep]
                if d.remaining:
                    return out
                self._message(from_client, bytes(d.buf), d.size, ts_ns, out)
                d.buf.clear()
                d.state = K_SIZE
                continue
            if pos >= n:
                if missing:
                    self.stats.error(self.protocol, "lost_sync")
                    d.state = K_RESYNC
                    d.buf.clear()
                return out
            want = 4 - len(d.buf)
            d.buf += payload[pos:pos + want]
            pos += min(want, n - pos)
            if len(d.buf) < 4:
                continue
            size = int.from_bytes(d.buf, "big", signed=True)
            d.buf.clear()
            if not 8 <= size <= self.config.kafka_max_message:
                self.stats.error(self.protocol, "bad_length")
                d.state = K_RESYNC
                return out
            d.size = d.remaining = size
            d.state = K_BODY

    def _plausible(self, payload: bytes, from_client: bool) -> bool:
        if len(payload) < 12:
            return False
        size = int.from_bytes(payload[0:4], "big", signed=True)
        if not 8 <= size <= self.config.kafka_max_message:
            return False
        if not from_client:
            return int.from_bytes(payload[4:8], "big", signed=True) in self.pending
        key = int.from_bytes(payload[4:6], "big", signed=True)
        version = int.from_bytes(payload[6:8], "big", signed=True)
        return 0 <= key <= _MAX_API_KEY and 0 <= version <= _MAX_API_VERSION

    def _message(self, from_client: bool, body: bytes, size: int, ts_ns: int, out: list[L7Record]) -> None:
        complete = len(body) >= size
        try:
            if from_client:
                self._request(_Reader(body), ts_ns, out)
            else:
                self._response(_Reader(body), complete, ts_ns, out)
        except L7ParseError as err:
            self.stats.error(self.protocol, err.kind)

    def _request(self, r: _Reader, ts_ns: int, out: list[L7Record]) -> None:
        api_key, version, correlation_id = r.int(2), r.int(2), r.int(4)
        if not 0 <= api_key <= _MAX_API_KEY or not 0 <= version <= _MAX_API_VERSION:
            raise L7ParseError(f"api key {api_key} version {version}")
        client_id = r.string(False) or ""
        flexible = version >= FIRST_FLEXIBLE.get(api_key, 1 << 15)
        topic, partial = "", False
        try:
            r.tags(flexible)
            topic = request_topic(r, api_key, version, flexible, self.ids)
        except Truncated:
            partial = api_key in (PRODUCE, FETCH, METADATA)
        req = _Request(api_key, version, correlation_id, client_id, topic, ts_ns)
        self.pending[correlation_id] = req
        if len(self.pending) > self.config.max_pending:  # e.g. acks=0 produce requests get no response
            self.pending.popitem(last=False)
        kafka = flow_pb2.Kafka(api_version=version, api_key=_name(api_key), correlation_id=correlation_id,
                               topic=topic, client_id=client_id)
        layer7 = flow_pb2.Layer7(type=flow_pb2.REQUEST, kafka=kafka)
        summary = f"Kafka request {kafka.api_key} correlation id {correlation_id} topic '{topic}'"
        out.append(L7Record(layer7, False, summary, partial, self.protocol))

    def _response(self, r: _Reader, complete: bool, ts_ns: int, out: list[L7Record]) -> None:
        correlation_id = r.int(4)
        req = self.pending.pop(correlation_id, None)
        if req is None:
            raise UnmatchedResponse(f"correlation id {correlation_id}")
        # Response header v1 (tagged fields) for flexible versions, except ApiVersions (always v0).
        flexible = req.api_version >= FIRST_FLEXIBLE.get(req.api_key, 1 << 15)
        topic, error, partial = req.topic, 0, False
        try:
            if req.api_key != APIVERSIONS:
                r.tags(flexible)
            resp_topic, error = response_topic_error(r, req.api_key, req.api_version, flexible, self.ids)
            topic = topic or resp_topic
        except Truncated:
            partial = True
            if complete:
                self.stats.error(self.protocol, "truncated")
        kafka = flow_pb2.Kafka(error_code=error, api_version=req.api_version, api_key=_name(req.api_key),
                               correlation_id=correlation_id, topic=topic, client_id=req.client_id)
        layer7 = flow_pb2.Layer7(type=flow_pb2.RESPONSE, latency_ns=max(ts_ns - req.ts_ns, 0), kafka=kafka)
        summary = (f"Kafka response {kafka.api_key} correlation id {correlation_id} topic '{topic}' "
                   f"return code {error}")
        out.append(L7Record(layer7, True, summary, partial, self.protocol))


def _name(api_key: int) -> str:
    return API_KEYS.get(api_key, str(api_key))
