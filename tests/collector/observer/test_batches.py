"""flowscope.FlowBatches: every flow exactly once, in order, in batches, history and follow."""
from google.protobuf import field_mask_pb2

from proto.flow import flow_pb2
from proto.observer import observer_pb2
from tests.common.filters.sample import make_flow
from tests.collector.observer.streams import BOUND, reader, wait_for_followers

Req = observer_pb2.GetFlowsRequest


def test_history_batches_hold_every_flow_once_in_order(serve):
    served = serve(capacity=10000)
    for i in range(5000):
        served.observer.publish(make_flow(sport=i))
    batches = list(served.batches.GetFlowBatches(Req(number=2**64 - 1), timeout=30))
    ports = [r.flow.l4.TCP.source_port for b in batches for r in b.responses]
    assert ports == list(range(5000))
    assert len(batches) == 5 and all(len(b.responses) == 1000 for b in batches)


def test_follow_batches_hold_every_new_flow_once_in_order(serve):
    served = serve(capacity=100000)
    served.observer.publish(make_flow(sport=65000))  # history: not asked for
    call = served.batches.GetFlowBatches(Req(follow=True))
    got = reader(call)
    wait_for_followers(served.observer)
    total = 7000
    for i in range(total):
        served.observer.publish(make_flow(sport=i))
    ports, sizes = [], []
    while len(ports) < total:
        batch = got.get(timeout=BOUND)
        sizes.append(len(batch.responses))
        ports += [r.flow.l4.TCP.source_port for r in batch.responses]
    assert ports == list(range(total))
    assert max(sizes) <= 1000 and len(sizes) < total / 10  # really batched
    call.cancel()


def test_batches_honour_filters_and_field_mask(serve):
    served = serve()
    for i in range(10):
        served.observer.publish(make_flow(sport=i))
    request = Req(number=3, whitelist=[flow_pb2.FlowFilter(source_port=["1", "2", "3", "4"])],
                  field_mask=field_mask_pb2.FieldMask(paths=["l4"]))
    batches = list(served.batches.GetFlowBatches(request, timeout=10))
    flows = [r.flow for b in batches for r in b.responses]
    assert [f.l4.TCP.source_port for f in flows] == [2, 3, 4]
    assert all(not f.uuid and not f.HasField("source") for f in flows)
    assert all(r.node_name == "node-1" for b in batches for r in b.responses)
