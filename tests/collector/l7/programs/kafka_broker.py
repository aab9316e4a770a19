"""A Kafka BROKER STAND-IN (Debian has no Kafka broker): it speaks just enough of the protocol for a
real kafka-python client to produce and consume — ApiVersions, Metadata, Produce, Fetch, ListOffsets
and FindCoordinator — using kafka-python's own protocol classes to decode requests and encode responses.
It is not a broker: one partition per topic, records kept in memory as the batches produced.

`kafka_broker.py PORT MAX_VERSIONS` where MAX_VERSIONS is "classic" (pre-flexible versions) or
"flexible" (compact strings and tagged fields). Prints READY, then one JSON line per request answered:
{"api_key", "api_version", "correlation_id", "client_id", "topic", "error_code"} — the test's ground truth.
The topic "forbidden" gets TOPIC_AUTHORIZATION_FAILED (29) in Metadata."""

import json
import socket
import struct
import sys
import threading

from kafka.protocol.consumer import FetchRequest, FetchResponse, ListOffsetsRequest, ListOffsetsResponse
from kafka.protocol.metadata import (ApiVersionsRequest, ApiVersionsResponse, FindCoordinatorRequest,
                                     FindCoordinatorResponse, MetadataRequest, MetadataResponse)
from kafka.protocol.producer import ProduceRequest, ProduceResponse

PORT = int(sys.argv[1])
MAX = {
    "classic": {18: 4, 3: 8, 0: 8, 1: 11, 2: 5, 10: 2},
    "flexible": {18: 4, 3: 12, 0: 12, 1: 12, 2: 6, 10: 3},
}[sys.argv[2]]
REQUESTS = {c.API_KEY: c for c in (ApiVersionsRequest, MetadataRequest, ProduceRequest, FetchRequest,
                                   ListOffsetsRequest, FindCoordinatorRequest)}
FORBIDDEN = "forbidden"
batches: dict[str, list[bytes]] = {}
lock = threading.Lock()


def metadata(req, v):
    asked = [t.name for t in req.topics] if req.topics else []
    names = asked or sorted(batches)
    topics = []
    for name in names:
        error = 29 if name == FORBIDDEN else 0
        parts = [] if error else [MetadataResponse.MetadataResponseTopic.MetadataResponsePartition(
            error_code=0, partition_index=0, leader_id=0, leader_epoch=0, replica_nodes=[0], isr_nodes=[0],
            offline_replicas=[])]
        topics.append(MetadataResponse.MetadataResponseTopic(error_code=error, name=name, is_internal=False,
                                                             partitions=parts))
    broker = MetadataResponse.MetadataResponseBroker(node_id=0, host="127.0.0.1", port=PORT, rack=None)
    resp = MetadataResponse(version=v, throttle_time_ms=0, brokers=[broker], cluster_id="standin",
                            controller_id=0, topics=topics)
    return resp, (asked[0] if asked else ""), (topics[0].error_code if topics else 0)


def produce(req, v):
    out = []
    for topic in req.topic_data:
        parts = []
        for part in topic.partition_data:
            with lock:
                stored = batches.setdefault(topic.name, [])
                base = len(stored)
                stored.append(bytes(part.records))
            parts.append(ProduceResponse.TopicProduceResponse.PartitionProduceResponse(
                index=part.index, error_code=0, base_offset=base, log_append_time_ms=-1, log_start_offset=0,
                record_errors=[], error_message=None))
        out.append(ProduceResponse.TopicProduceResponse(name=topic.name, partition_responses=parts))
    return ProduceResponse(version=v, responses=out, throttle_time_ms=0), req.topic_data[0].name, 0


def fetch(req, v):
    out = []
    for topic in req.topics:
        parts = []
        for part in topic.partitions:
            with lock:
                stored = batches.get(topic.topic, [])
            records = b"".join(stored) if part.fetch_offset == 0 else b""
            parts.append(FetchResponse.FetchableTopicResponse.PartitionData(
                partition_index=part.partition, error_code=0, high_watermark=len(stored),
                last_stable_offset=len(stored), log_start_offset=0, aborted_transactions=[],
                preferred_read_replica=-1, records=records))
        out.append(FetchResponse.FetchableTopicResponse(topic=topic.topic, partitions=parts))
    first = req.topics[0].topic if req.topics else ""
    return FetchResponse(version=v, throttle_time_ms=0, error_code=0, session_id=0, responses=out), first, 0


def list_offsets(req, v):
    topics = [ListOffsetsResponse.ListOffsetsTopicResponse(name=t.name, partitions=[
        ListOffsetsResponse.ListOffsetsTopicResponse.ListOffsetsPartitionResponse(
            partition_index=p.partition_index, error_code=0, timestamp=-1, offset=0, leader_epoch=-1)
        for p in t.partitions]) for t in req.topics]
    return ListOffsetsResponse(version=v, throttle_time_ms=0, topics=topics), "", 0


def find_coordinator(req, v):
    return FindCoordinatorResponse(version=v, throttle_time_ms=0, error_code=15, error_message=None,
                                   node_id=-1, host="", port=-1), "", 15


def api_versions(req, v):
    keys = [ApiVersionsResponse.ApiVersion(api_key=k, min_version=0, max_version=m) for k, m in sorted(MAX.items())]
    return ApiVersionsResponse(version=v, error_code=0, api_keys=keys, throttle_time_ms=0), "", 0


HANDLERS = {18: api_versions, 3: metadata, 0: produce, 1: fetch, 2: list_offsets, 10: find_coordinator}


def serve(conn: socket.socket) -> None:
    stream = conn.makefile("rb")
    while True:
        head = stream.read(4)
        if len(head) < 4:
            return
        payload = stream.read(struct.unpack(">i", head)[0])
        key, version = struct.unpack(">hh", payload[:4])
        req = REQUESTS[key].decode(payload, version=version, header=True)
        resp, topic, error = HANDLERS[key](req, version)
        print(json.dumps({"api_key": key, "api_version": version, "correlation_id": req.header.correlation_id,
                          "client_id": req.header.client_id, "topic": topic, "error_code": error}), flush=True)
        if key == 0 and req.acks == 0:
            continue
        resp.with_header(correlation_id=req.header.correlation_id)
        conn.sendall(resp.encode(header=True, framed=True))


listener = socket.create_server(("127.0.0.1", PORT))
print("READY", flush=True)
while True:
    c, _ = listener.accept()
    threading.Thread(target=serve, args=(c,), daemon=True).start()
