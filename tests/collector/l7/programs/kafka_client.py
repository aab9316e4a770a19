"""A real kafka-python producer and consumer against the broker stand-in: three records to "events"
(one Produce each) after one send to "forbidden" (Metadata answers TOPIC_AUTHORIZATION_FAILED), then a
consumer fetching "events" from offset 0. Prints the values it consumed, one per line."""

import sys

from kafka import KafkaConsumer, KafkaProducer, TopicPartition

server = f"127.0.0.1:{sys.argv[1]}"
producer = KafkaProducer(bootstrap_servers=server, client_id="l7-producer", acks=1, linger_ms=0, retries=0,
                         max_block_ms=3000, enable_idempotence=False)
try:
    producer.send("forbidden", b"x").get(timeout=10)
except Exception as err:  # noqa: BLE001 - the error is the point: the client must see it
    print("ERROR", type(err).__name__, flush=True)
for i in range(3):
    producer.send("events", b"event-%d" % i).get(timeout=10)
producer.close()

consumer = KafkaConsumer(bootstrap_servers=server, client_id="l7-consumer", group_id=None,
                         enable_auto_commit=False, fetch_max_wait_ms=100)
tp = TopicPartition("events", 0)
consumer.assign([tp])
consumer.seek(tp, 0)
got = []
for _ in range(20):
    for records in consumer.poll(timeout_ms=200).values():
        got += [r.value.decode() for r in records]
    if len(got) >= 3:
        break
consumer.close()
print("\n".join(got))
