"""UI callback latency, by hand: `.venv/bin/python bench/ui.py [--flows 2000000] [--workloads 500] [--edges 5000]`.

Fills an embedded store (chdb, temp dir) with synthetic flows over `--edges` client -> server pairs among
`--workloads` workloads in 25 namespaces, spread over one hour (tests/ui/flowgen.synthetic_flows,
written through storage.FlowWriter), then times the Dash callbacks server-side the way the browser calls
them: HTTP POSTs to /_dash-update-component through the Flask app (JSON in, JSON out, the callback's
store queries and builders in between). Side by side: the cache off (ttl 0: every call queries) and on
(a repeated live-mode refresh); the map collapsed (500 workloads) and with a namespace expanded; table
pages unfiltered, deep, sorted by another column, behind a clicked edge and behind a filter.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from storage import FlowWriter, open_store  # noqa: E402
from lab.testbed.flowgen import synthetic_flows  # noqa: E402
from ui import ids  # noqa: E402
from ui.app import create_app  # noqa: E402

NS = 1_000_000_000


def fill(store, flows: int, workloads: int, edges: int, start_ns: int) -> float:
    writer = FlowWriter(store, batch_rows=200_000, max_pending_rows=1_000_000)
    t0 = time.monotonic()
    done = 0
    for batch in synthetic_flows(start_ns, flows, workloads=workloads, edges=edges, span_s=3600):
        writer.write(batch)
        done += len(batch)
        if done % 500_000 == 0:
            print(f"  {done} flows written ({done / (time.monotonic() - t0):,.0f}/s)", file=sys.stderr)
    writer.close(timeout=600)
    return time.monotonic() - t0


def _prop(id_: str, prop: str, value=None) -> dict:
    return {"id": id_, "property": prop, "value": value}


def call(client, outputs: list[tuple[str, str]], inputs: list[dict], state: list[dict]) -> tuple[float, dict]:
    body = {"output": ".." + "...".join(f"{i}.{p}" for i, p in outputs) + "..",
            "outputs": [{"id": i, "property": p} for i, p in outputs], "inputs": inputs, "state": state,
            "changedPropIds": [f"{inputs[0]['id']}.{inputs[0]['property']}"]}
    t0 = time.perf_counter()
    r = client.post("/_dash-update-component", data=json.dumps(body), content_type="application/json")
    elapsed = time.perf_counter() - t0
    if r.status_code != 200:
        raise RuntimeError(f"callback {outputs}: HTTP {r.status_code}: {r.data[:300]!r}")
    return elapsed, r.get_json()


def map_call(client, view: dict, expanded: list[str]):
    return call(client, [(ids.MAP, "elements"), (ids.MAP_SUMMARY, "children")],
                [_prop(ids.STATE, "data", view), _prop(ids.TICK, "n_intervals", 1),
                 _prop(ids.EXPANDED, "data", expanded)], [])


def table_call(client, view: dict, selection, start: int, sort_model=()):
    return call(client, [(ids.GRID, "getRowsResponse"), (ids.GRID_TOTAL, "children")],
                [_prop(ids.GRID, "getRowsRequest", {"startRow": start, "endRow": start + 100,
                                                     "sortModel": list(sort_model), "filterModel": {}})],
                [_prop(ids.STATE, "data", view), _prop(ids.SELECTION, "data", selection)])


def view_state(**kw) -> dict:
    base = {"window": "custom", "since": "", "until": "", "namespaces": [], "pod": "", "label": "",
            "verdicts": [], "protocols": [], "http_status": "", "changes": False, "selection": ""}
    return {**base, **kw}


def timed(fn, repeat: int) -> tuple[list[float], dict]:
    times, out = [], None
    for _ in range(repeat):
        t, out = fn()
        times.append(t)
    return times, out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--flows", type=int, default=2_000_000)
    parser.add_argument("--workloads", type=int, default=500)
    parser.add_argument("--edges", type=int, default=5000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()

    tmp = tempfile.mkdtemp(prefix="fs-bench-ui-")
    try:
        store = open_store(f"chdb://{tmp}?database=bench")
        store.migrate()
        start_ns = (time.time_ns() // NS - 3600) * NS
        print(f"writing {args.flows:,} flows ({args.workloads} workloads, {args.edges} edges, one hour)...",
              file=sys.stderr)
        seconds = fill(store, args.flows, args.workloads, args.edges, start_ns)
        print(f"  {args.flows / seconds:,.0f} flows/s", file=sys.stderr)
        since = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(start_ns // NS - 60))
        until = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(start_ns // NS + 3660))
        hour = view_state(since=since, until=until)
        rows = []
        for label, ttl in (("no cache", 0.0), ("cached", 60.0)):
            client = create_app(store, ttl_s=ttl, with_policy=False).server.test_client()
            smap_times, out = timed(lambda: map_call(client, hour, []), args.repeat)
            elements = out["response"][ids.MAP]["elements"]
            rows.append((f"map, 1h, all namespaces (collapsed) [{label}]", smap_times,
                         f"{len(elements)} elements"))
            times, out = timed(lambda: map_call(client, hour, ["ns-03"]), args.repeat)
            rows.append((f"map, 1h, ns-03 expanded [{label}]", times,
                         f"{len(out['response'][ids.MAP]['elements'])} elements"))
            times, out = timed(lambda: map_call(client, {**hour, "changes": True}, []), args.repeat)
            rows.append((f"map, 1h, what changed [{label}]", times, ""))
            times, out = timed(lambda: table_call(client, hour, None, 0), args.repeat)
            total = out["response"][ids.GRID]["getRowsResponse"]["rowCount"]
            rows.append((f"table, first 100 of all, by time [{label}]", times, f"{total:,} rows match"))
            times, _ = timed(lambda: table_call(client, hour, None, 100_000), args.repeat)
            rows.append((f"table, rows 100000-100100 [{label}]", times, ""))
            times, _ = timed(lambda: table_call(client, hour, None, 0, [{"colId": "dst_port", "sort": "asc"}]),
                             args.repeat)
            rows.append((f"table, sorted by dst port [{label}]", times, ""))
            edge = next(e for e in elements if e["data"].get("selection", "").startswith("namespaces:"))
            from ui.state import parse_selection
            sel = parse_selection(edge["data"]["selection"])
            times, out = timed(lambda: table_call(client, hour, sel, 0), args.repeat)
            rows.append((f"table, behind a clicked (aggregated) edge [{label}]", times,
                         f"{out['response'][ids.GRID]['getRowsResponse']['rowCount']:,} rows"))
            pod_edge = {"kind": "edge", "source": "ns-00/wl-000", "target": "", "port": 0, "protocol": "TCP",
                        "verdict": "FORWARDED"}
            smap = store.service_map(start_ns, start_ns + 3600 * NS, ["ns-00"])
            e = next(e for e in smap.edges if e.source == "ns-00/wl-000")
            pod_edge.update(target=e.target, port=e.port)
            times, out = timed(lambda: table_call(client, hour, pod_edge, 0), args.repeat)
            rows.append((f"table, behind a workload edge [{label}]", times,
                         f"{out['response'][ids.GRID]['getRowsResponse']['rowCount']:,} rows"))
            times, out = timed(lambda: table_call(client, {**hour, "namespaces": ["ns-07"],
                                                           "verdicts": ["DROPPED"]}, None, 0), args.repeat)
            rows.append((f"table, filter ns-07 + DROPPED [{label}]", times,
                         f"{out['response'][ids.GRID]['getRowsResponse']['rowCount']:,} rows"))
        width = max(len(r[0]) for r in rows)
        print(f"\n{args.flows:,} stored flows, {args.workloads} workloads, {args.edges} edges; "
              f"{args.repeat} calls each (first call of the cached set is a miss)")
        print(f"{'callback':<{width}}  {'median ms':>9}  {'max ms':>8}  note")
        for name, times, note in rows:
            print(f"{name:<{width}}  {statistics.median(times) * 1000:>9.1f}  {max(times) * 1000:>8.1f}  {note}")
        store.close()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
