"""The Python half of the embedded engine's fast ingest: flows -> envelope rows (storage.schema.envelope)
that ClickHouse parses itself (format Protobuf) into the flows table through the ingest views
(storage.schema.ingest_view, ingest_chain). Python work per flow is a few bytes around the flow's own
bytes: since migration 11 only those (encode_raws), before it also facts read off the parsed flow."""

from __future__ import annotations

from proto.wire import LENGTH_DELIMITED, VARINT, key, varint
from storage.ingest.columns import stored_bytes
from storage.schema.envelope import FIELDS, IDENTITY_KIND, L4_CODES, L7_CODES

_FLOW, _RAW, _PARTS = (key(FIELDS[name][1], LENGTH_DELIMITED) for name in ("flow", "raw", "parts"))
# the varint fields 3-7, in the order of encode()'s per-flow facts
_FACT_KEYS = tuple(key(FIELDS[name][1], VARINT)
                   for name in ("is_reply", "l4", "l7", "source_kind", "destination_kind"))


def encode(flows, raws, compact: bool = True) -> bytes:
    """Length-delimited envelopes for `flows` (with `raws` their serialized bytes): CompactFlow, or
    StoredFlow for a store not migrated to 7 yet. Per flow Python only reads the few facts the wire
    cannot tell ClickHouse (is_reply set? which L4/L7 oneof? the endpoint kinds it can decide
    cheaply); their encoding is cached per combination."""
    l4s, l7s, identity_kind = L4_CODES, L7_CODES, IDENTITY_KIND
    tails: dict[tuple, bytes] = {}
    parts = []
    append = parts.append
    for f, raw in zip(flows, raws):
        src, dst = f.source, f.destination
        facts = ((1 if f.is_reply.value else 0) if f.HasField("is_reply") else 2,
               l4s[f.l4.WhichOneof("protocol")], l7s[f.l7.WhichOneof("record")] if f.HasField("l7") else 0,
               identity_kind.get(src.identity) or (1 if src.pod_name else 0),
               identity_kind.get(dst.identity) or (1 if dst.pod_name else 0))
        tail = tails.get(facts)
        if tail is None:
            tail = tails[facts] = b"".join(k + varint(v) for k, v in zip(_FACT_KEYS, facts))
        n = varint(len(raw))
        if compact:  # the flow three times: parsed, kept whole, parsed as FlowParts
            append(varint(len(_FLOW + _RAW + _PARTS) + 3 * (len(n) + len(raw)) + len(tail)))
            append(_FLOW)
            append(n)
            append(raw)
            append(_RAW)
            append(n)
            append(raw)
            append(_PARTS)
        else:
            kept = stored_bytes(f, raw)
            raw_n = n
            n = varint(len(kept))
            append(varint(len(_FLOW + _RAW) + len(raw_n) + len(raw) + len(n) + len(kept) + len(tail)))
            append(_FLOW)
            append(raw_n)
            append(raw)
            append(_RAW)
            raw = kept
        append(n)
        append(raw)
        append(tail)
    return b"".join(parts)


def encode_raws(raws) -> bytes:
    """Length-delimited CompactFlow envelopes of serialized flows for the ingest of migration 11, which
    works out from the bytes the facts encode() reads in Python: each flow's bytes three times (parsed,
    kept, parsed as FlowParts), no parsed flow needed. The framing depends on the length only: cached."""
    head = len(_FLOW + _RAW + _PARTS)
    framing: dict[int, tuple[bytes, bytes, bytes]] = {}
    parts: list[bytes] = []
    extend = parts.extend
    for raw in raws:
        size = len(raw)
        frame = framing.get(size)
        if frame is None:
            n = varint(size)
            frame = framing[size] = (varint(head + 3 * (len(n) + size)) + _FLOW + n, _RAW + n, _PARTS + n)
        extend((frame[0], raw, frame[1], raw, frame[2], raw))
    return b"".join(parts)
