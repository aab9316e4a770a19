"""Kafka parsed from REAL client traffic: kafka-python (producer and consumer) against a BROKER STAND-IN
written for this test (tests/collector/l7/programs/kafka_broker.py — Debian has no Kafka broker; it
speaks ApiVersions, Metadata, Produce, Fetch through kafka-python's own protocol classes), once with
pre-flexible and once with flexible (compact, tagged-field) versions. The capture, replayed in
512-byte prefixes, must show every request and response the stand-in logged: api key, version,
correlation id, client id, topic and error code; tshark's Kafka dissector must agree on the counts."""

from __future__ import annotations

import collections
import json
import sys

import pytest

from collector.l7 import L7Config, L7Dispatcher
from collector.l7.kafka import API_KEYS

from lab.testbed.netns import background, netns, tcpdump
from .capture import python, replay, tshark_values
pytestmark = pytest.mark.root

MODES = {9092: "classic", 9093: "flexible"}


def test_kafka_python_against_broker_stand_in(tmp_path):
    pcap = tmp_path / "kafka.pcap"
    logs = {}
    with netns() as ns:
        brokers = [background(ns, [sys.executable, "tests/collector/l7/programs/kafka_broker.py", str(port), mode],
                              ready="READY") for port, mode in MODES.items()]
        with brokers[0] as classic, brokers[1] as flexible:
            with tcpdump(ns, pcap, "tcp portrange 9092-9093"):
                for port in MODES:
                    out = python(ns, "kafka_client", str(port)).stdout.split()
                    assert out == ["ERROR", "TopicAuthorizationFailedError", "event-0", "event-1", "event-2"], out
            for port, proc in zip(MODES, (classic, flexible)):
                proc.kill()
                logs[port] = [json.loads(line) for line in proc.stdout.read().splitlines() if line.startswith("{")]

    dispatcher = L7Dispatcher(L7Config(kafka_ports=frozenset(MODES)))
    result = replay(pcap, dispatcher, set(MODES))
    assert dispatcher.stats.parse_errors["kafka"] == 0, dispatcher.stats.errors_by_kind
    for port, log in logs.items():
        records = [(k, r) for k, r in result.records if k.server_port == port]
        requests = [r.layer7.kafka for k, r in records if not r.is_reply]
        responses = [r.layer7.kafka for k, r in records if r.is_reply]
        broker_saw = collections.Counter((API_KEYS[e["api_key"]], e["api_version"], e["correlation_id"],
                                          e["client_id"], e["topic"]) for e in log)
        assert collections.Counter((k.api_key, k.api_version, k.correlation_id, k.client_id, k.topic)
                                   for k in requests) == broker_saw, MODES[port]
        broker_answered = collections.Counter((API_KEYS[e["api_key"]], e["correlation_id"], e["error_code"])
                                              for e in log)
        assert collections.Counter((k.api_key, k.correlation_id, k.error_code) for k in responses) == broker_answered
        assert {k.api_key for k in requests} >= {"apiversions", "metadata", "produce", "fetch"}
        assert ("metadata", 29) in {(k.api_key, k.error_code) for k in responses}
        assert not any(r.partial for _, r in records)
        assert all(r.layer7.latency_ns > 0 for _, r in records if r.is_reply)
    flexible_versions = {(k.api_key, k.api_version) for k, r in ((r.layer7.kafka, r) for _, r in result.records)}
    assert {("produce", 9), ("fetch", 12), ("metadata", 12), ("produce", 8), ("fetch", 11)} <= flexible_versions
    produce = next(r for _, r in result.records if r.layer7.kafka.api_key == "produce" and not r.is_reply)
    assert produce.summary.startswith("Kafka request produce correlation id ") and produce.summary.endswith(
        "topic 'events'")

    # tshark's Kafka dissector agrees on the number of requests per api key
    decode = [f"tcp.port=={port},kafka" for port in MODES]
    ts_keys = tshark_values(pcap, "kafka && !kafka.response_frame", "kafka.request_key", decode)
    ours = collections.Counter(r.layer7.kafka.api_key for _, r in result.records if not r.is_reply)
    names = {str(k): v for k, v in API_KEYS.items()}
    assert collections.Counter(names.get(k, k) for k in ts_keys) == ours
