"""Fuzz the Kafka parser (collector/l7/kafka.py): requests and responses of every API it reads."""

import struct

import atheris

with atheris.instrument_imports(include=["collector.l7"]):
    from collector.l7.kafka import KafkaParser, TopicIds
    from collector.l7.types import L7Config, L7ParseError, L7Stats

from tests.fuzz.engine import conversation, feed, run

CONFIG = L7Config()
IDS = TopicIds()   # shared like a dispatcher's: topic ids learned from one input name another's


def _frame(body: bytes) -> bytes:
    return struct.pack(">i", len(body)) + body


def _produce_v3() -> list[tuple[bool, bytes]]:
    header = struct.pack(">hhih", 0, 3, 7, 3) + b"cli"
    body = struct.pack(">h", -1) + struct.pack(">hi", 1, 1000) + struct.pack(">i", 1)
    body += struct.pack(">h", 6) + b"events" + struct.pack(">i", 1) + struct.pack(">ii", 0, 0)
    response = struct.pack(">i", 7) + struct.pack(">i", 1) + struct.pack(">h", 6) + b"events"
    response += struct.pack(">i", 1) + struct.pack(">ihqq", 0, 0, 42, -1) + struct.pack(">i", 0)
    return [(True, _frame(header + body)), (False, _frame(response))]


def _metadata_v1() -> list[tuple[bool, bytes]]:
    header = struct.pack(">hhih", 3, 1, 9, 3) + b"cli"
    body = struct.pack(">i", 1) + struct.pack(">h", 6) + b"orders"
    response = struct.pack(">i", 9) + struct.pack(">i", 0) + struct.pack(">i", 0) + struct.pack(">i", 1)
    response += struct.pack(">hh", 3, 6) + b"orders" + b"\x00" + struct.pack(">i", 0)
    return [(True, _frame(header + body)), (False, _frame(response))]


SEEDS = [b"\x00" + conversation(_produce_v3()), b"\x00" + conversation(_metadata_v1())]


def one_input(data: bytes) -> None:
    joined = bool(data[:1]) and data[0] & 1 == 1
    feed(KafkaParser(CONFIG, L7Stats(), synced=not joined, ids=IDS), data[1:], L7ParseError)


def main() -> None:
    run(one_input, SEEDS)


if __name__ == "__main__":
    main()
