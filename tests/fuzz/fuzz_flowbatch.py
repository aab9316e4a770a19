"""Fuzz the relay's FlowBatch ingest path: bytes off the wire -> the node stream (relay/node.py and
relay/wire.py: each flow's time and uuid read from its bytes, node naming, ordering times, replay dedup;
malformed responses left out) -> the storage encodings every stored flow goes through (the writer's
check of flow bytes, storage/ingest/envelope.encode_raws for stores at schema 11, and for older stores and
every read the parsed flows through envelope.encode in both envelopes and columns.flows_to_columns)."""

import atheris

with atheris.instrument_imports(include=["relay.node", "relay.merge", "relay.wire", "storage.ingest.columns",
                                         "storage.ingest.envelope", "storage.writer.check"]):
    from proto.flow import flow_pb2
    from proto.flowscope import flowscope_pb2
    from proto.observer import observer_pb2
    from relay.node import NodeClient, Peer
    from storage.ingest import columns, envelope
    from storage.writer.check import malformed

from tests.common.filters.sample import BASE_NS, make_flow
from tests.fuzz.engine import run

NOW_NS = BASE_NS + 10**9


def _seed() -> bytes:
    http = make_flow(uuid="u1", l7=flow_pb2.Layer7(type=flow_pb2.RESPONSE, latency_ns=5,
                                                     http=flow_pb2.HTTP(code=200, method="GET", url="/a")))
    dns = make_flow(proto="UDP", dport=53, time_ns=BASE_NS + 1, uuid="u2",
                    l7=flow_pb2.Layer7(type=flow_pb2.RESPONSE, dns=flow_pb2.DNS(query="a.", ips=["10.0.0.1"])))
    drop = make_flow(time_ns=BASE_NS + 2, verdict=flow_pb2.DROPPED, drop_reason_desc=flow_pb2.POLICY_DENIED)
    batch = flowscope_pb2.FlowBatch(responses=[observer_pb2.GetFlowsResponse(flow=f) for f in (http, dns, drop)])
    batch.responses.add(lost_events=flow_pb2.LostEvent(source=flow_pb2.PERF_EVENT_RING_BUFFER, num_events_lost=3))
    return batch.SerializeToString()


SEEDS = [_seed()]


def one_input(data: bytes) -> None:
    runs = []
    node = NodeClient(Peer("node-1", "localhost:4244"), lambda _node, r: runs.append(r), lambda *_: None,
                      since_ns=BASE_NS, seen=("u1",))
    node._forward(data)  # malformed responses are counted and left out, never raised
    for r in runs:
        raws = [entry.data for entry in r.flow_list()]
        bad = malformed(raws)  # the writer leaves these out and counts them
        raws = [raw for i, raw in enumerate(raws) if i not in bad]
        envelope.encode_raws(raws)
        flows = [flow_pb2.Flow.FromString(raw) for raw in raws]  # what passed the check parses
        envelope.encode(flows, raws, compact=True)
        envelope.encode(flows, raws, compact=False)
        columns.flows_to_columns(flows, raws, now_ns=NOW_NS)


def main() -> None:
    run(one_input, SEEDS)


if __name__ == "__main__":
    main()
