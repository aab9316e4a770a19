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
    window = 59 * 60 * 10**9 + 1
    assert len(progress) == 7 and progress[-1] == (window, window, 60), "the last slice reports the whole window"
    assert [p[0] for p in progress] == sorted(p[0] for p in progress) and progress[0][2] >= 1
    assert all(total == window for _done, total, _n in progress)
    assert list(iter_flows(store, 1_600_000_000 * 10**9, 1_600_000_100 * 10**9)) == []


def test_progress_says_time_window_and_ends_at_the_whole_window(capsys):
    """A day-long window with flows only at its end: 24 slices of 3600 s + 1 ns would end at slice 13 of
    24 with the old step, leaving "50% (0 flows)" as the last word; now the last line counts the window."""
    from enforcer.history import stderr_progress

    class Recent:
        def query_flows(self, whitelist=(), blacklist=(), since=None, until=None, limit=100, first=False):
            return [make_flow("frontend", "backend", 8080, time_s=until // 10**9)] if until >= end else []

    start, end = 0, 24 * 3600 * 10**9
    list(iter_flows(Recent(), start, end, progress=stderr_progress("replaying flows")))
    lines = capsys.readouterr().err.splitlines()
    assert lines[0] == "replaying flows: 4% of the time window read, 0 flows so far"
    assert lines[-1].startswith("replaying flows: 1 flows in the window (")
