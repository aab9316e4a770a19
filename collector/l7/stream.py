"""Byte accounting for a segment seen only as a prefix: the parsers' common step."""


def consume(remaining: int, pos: int, n: int, missing: int) -> tuple[int, int, int, int]:
    """Consume up to `remaining` bytes of a message part we skip or keep: first the seen payload
    bytes [pos, n), then, once those are used up, the `missing` bytes of the segment nobody saw.
    Returns (pos, remaining, missing, unseen bytes consumed)."""
    seen = min(remaining, n - pos)
    remaining -= seen
    pos += seen
    unseen = min(remaining, missing) if pos >= n else 0
    return pos, remaining - unseen, missing - unseen, unseen


def unseen_bytes(payload: bytes, segment_len: int) -> int:
    """Bytes of the segment after the prefix we were given."""
    return segment_len - len(payload) if segment_len > len(payload) else 0
