"""Reading a window of stored flows in slices (progress over long histories), on both storage backends."""

from enforcer.history import iter_flows
from tests.enforcer.helpers import make_flow


def test_slices_return_every_flow_once_in_order_with_progress(store):
    from storage import FlowWriter
    flows = []
    for i in range(60):
        f = make_flow("frontend", "backend", 8080, time_s=1_700_000_000 + i * 60)
        f.uuid = f"hist-{i}"
        flows.append(f)
    writer = FlowWriter(store)
    writer.write(flows)
    assert writer.wait_stored(30)
    writer.close()
    progress = []
    got = list(iter_flows(store, 1_700_000_000 * 10**9, (1_700_000_000 + 59 * 60) * 10**9, slices=7,
                          progress=lambda done, total, n: progress.append((done, total, n))))
    assert [f.uuid for f in got] == [f.uuid for f in flows]
    assert progress[-1] == (7, 7, 60) and [p[0] for p in progress] == list(range(1, 8))
    assert list(iter_flows(store, 1_600_000_000 * 10**9, 1_600_000_100 * 10**9)) == []
