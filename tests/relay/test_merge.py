"""The time-ordered merge: out-of-order arrivals come out in time order once they have waited the
drain timeout; a full heap releases its oldest at once."""

from proto.flow import flow_pb2
from proto.observer import observer_pb2
from relay.merge import MergeBuffer, response_time_ns


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def responses(node: str, times_ns: list[int]) -> list[observer_pb2.GetFlowsResponse]:
    out = []
    for t in times_ns:
        flow = flow_pb2.Flow(node_name=node, uuid=f"{node}-{t}")
        flow.time.FromNanoseconds(t)
        out.append(observer_pb2.GetFlowsResponse(flow=flow, node_name=node))
    return out


def test_interleaved_nodes_come_out_in_time_order_after_the_drain_timeout():
    clock = FakeClock()
    merge = MergeBuffer(drain_timeout=0.5, capacity=1000, clock=clock)
    merge.push_many(responses("a", [10, 30, 50]))
    clock.now += 0.2
    merge.push_many(responses("b", [20, 40, 60]))
    assert merge.pop_ready() == []
    assert 0.29 < merge.next_deadline() < 0.31
    clock.now += 0.3
    # a's 10 is due; b's 20 sorts before a's 30 but has not waited long enough, so it holds 30 back
    assert [response_time_ns(r) for r in merge.pop_ready()] == [10]
    clock.now += 0.2
    assert [response_time_ns(r) for r in merge.pop_ready()] == [20, 30, 40, 50, 60]
    assert len(merge) == 0 and merge.next_deadline() is None


def test_full_heap_releases_oldest_immediately_and_flush_empties_it():
    clock = FakeClock()
    merge = MergeBuffer(drain_timeout=10, capacity=3, clock=clock)
    merge.push_many(responses("a", [4, 1]))  # a run out of order is sorted on the way in
    merge.push_many(responses("b", [2, 3]))
    assert [response_time_ns(r) for r in merge.pop_ready()] == [1]  # back within capacity
    assert [response_time_ns(r) for r in merge.pop_ready(flush=True)] == [2, 3, 4]
    assert len(merge) == 0


def test_lost_events_and_status_sort_by_envelope_time():
    clock = FakeClock()
    merge = MergeBuffer(drain_timeout=0, clock=clock)
    lost = observer_pb2.GetFlowsResponse(lost_events=flow_pb2.LostEvent(num_events_lost=3))
    lost.time.FromNanoseconds(15)
    merge.push_many(responses("a", [10, 20]) + [lost])
    assert [r.WhichOneof("response_types") for r in merge.pop_ready()] == ["flow", "lost_events", "flow"]


def test_runs_of_two_nodes_alternating_flow_by_flow_come_out_whole_and_in_order():
    # What two collectors' batches look like: each run a node's flows, the nodes' flows alternating.
    clock = FakeClock()
    merge = MergeBuffer(drain_timeout=0.5, capacity=100_000, clock=clock)
    for run in range(4):
        merge.push_many(responses("a", list(range(run * 200, run * 200 + 200, 2))))
        merge.push_many(responses("b", list(range(run * 200 + 1, run * 200 + 201, 2))))
    clock.now += 0.2
    merge.push_many(responses("c", [401, 900]))  # not due: holds back every flow from 401 on
    clock.now += 0.3
    first = merge.pop_runs()
    assert len(first) == 1 and [response_time_ns(r) for r in first[0].responses] == list(range(401))
    assert [r.flow.uuid for r in first[0].responses[:3]] == ["a-0", "b-1", "a-2"]
    assert len(merge) == 800 - 401 + 2
    clock.now += 0.2
    rest = [response_time_ns(r) for r in merge.pop_ready()]
    assert rest == sorted(list(range(401, 800)) + [401, 900])
    assert len(merge) == 0
