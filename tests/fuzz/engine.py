"""What every harness in tests/fuzz shares: starting atheris (libFuzzer) on a seeded corpus, and cutting
one fuzz input into the segments a parser is fed.

A harness is a module with `one_input(data: bytes)`, `SEEDS` (valid inputs the mutations start from)
and `main()`; run by hand with libFuzzer's flags:

    .venv/bin/python -m tests.fuzz.fuzz_http1 -runs=1000000 -timeout=1 [corpus dir]

An input that raises anything but the target's typed error is a crash (libFuzzer prints it and writes
the input as crash-*); one running past -timeout seconds is a hang."""

from __future__ import annotations

import os
import sys
import tempfile
from typing import Callable, Iterator

import atheris

Segment = tuple[bool, bytes, int]   # (from_client, payload prefix, full segment length)


def run(one_input: Callable[[bytes], None], seeds: list[bytes], argv: list[str] | None = None) -> None:
    """Fuzz `one_input` until libFuzzer's flags say stop (never returns). The corpus is the first
    non-flag argument (seeds are written into it), else a temporary directory; file arguments are
    inputs to run once each (libFuzzer's way to replay a crash or a timeout)."""
    argv = list(sys.argv if argv is None else argv)
    dirs = [a for a in argv[1:] if not a.startswith("-")]
    if not dirs:
        dirs = [tempfile.mkdtemp(prefix="flowscope-fuzz-")]
        argv.append(dirs[0])
    if os.path.isfile(dirs[0]):
        atheris.Setup(argv, one_input)
        atheris.Fuzz()
    os.makedirs(dirs[0], exist_ok=True)
    for i, seed in enumerate(seeds):
        with open(os.path.join(dirs[0], f"seed-{i}"), "wb") as out:
            out.write(seed)
    atheris.Setup(argv, one_input)
    atheris.Fuzz()


def segments(data: bytes, max_segments: int = 16) -> Iterator[Segment]:
    """The input as a conversation, segment by segment: a flags byte (bit 0: from the client; bit 1:
    the segment was longer than captured, by the next byte * 16), a 2-byte length, that many bytes.
    A plain framing rather than FuzzedDataProvider: seeds can be written in it (`conversation`)."""
    pos = 0
    for _ in range(max_segments):
        if pos + 3 > len(data):
            return
        flags, length = data[pos], int.from_bytes(data[pos + 1:pos + 3], "little") % 4096
        pos += 3
        unseen = 0
        if flags & 2 and pos < len(data):
            unseen, pos = data[pos] * 16, pos + 1
        payload = data[pos:pos + length]
        pos += length
        yield bool(flags & 1), payload, len(payload) + unseen


def conversation(parts: list[tuple[bool, bytes]]) -> bytes:
    """A seed in the framing `segments` reads: each part whole."""
    return b"".join(bytes([1 if from_client else 0]) + len(payload).to_bytes(2, "little") + payload
                    for from_client, payload in parts)


def feed(parser, data: bytes, typed_error: type[Exception]) -> int:
    """Feed an L7 parser the conversation in `data` as the dispatcher does (an h2c upgrade hands the
    connection to its replacement); `typed_error` (L7ParseError) is the only exception allowed, and
    the parser goes on after it. Every record must serialize. Returns the records made."""
    made = 0
    for ts, (from_client, payload, length) in enumerate(segments(data)):
        try:
            records = parser.feed(from_client, payload, length, ts)
            if parser.replacement is not None:
                replacement, leftover = parser.replacement, parser.leftover
                parser = replacement
                if leftover is not None:
                    records += parser.feed(from_client, leftover[0], leftover[1], ts)
        except typed_error:
            continue
        for record in records:
            record.layer7.SerializeToString()
            made += 1
    return made
