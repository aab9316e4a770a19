"""Relay memory for a long history query, run by hand:
    .venv/bin/python bench/relay_history.py [--small 50000] [--large 5000000]

Two databases in one chdb directory hold `--small` and `--large` flows spread over the last 23 hours.
For each, a `flowscope relay` (no collectors) serves `flowscope observe --since 24h --all -o json` from
storage, and the relay's peak RSS (VmHWM) is read when the stream ends. History is streamed in pages, so
the two peaks should be close (the issue's bound: within 1.5x); every flow must arrive exactly once.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
import uuid

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from proto.flow import flow_pb2  # noqa: E402

PY = sys.executable
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NS = 1_000_000_000


def template() -> flow_pb2.Flow:
    flow = flow_pb2.Flow(verdict=flow_pb2.FORWARDED, Type=flow_pb2.L3_L4, node_name="bench-node",
                         traffic_direction=flow_pb2.EGRESS, Summary="TCP Flags: SYN")
    flow.IP.source, flow.IP.destination, flow.IP.ipVersion = "10.244.0.11", "10.244.1.12", flow_pb2.IPv4
    flow.l4.TCP.source_port, flow.l4.TCP.destination_port = 43512, 8080
    for ep, pod, app in ((flow.source, "frontend-7d9f-abcde", "frontend"), (flow.destination, "backend-5c4b", "backend")):
        ep.namespace, ep.pod_name, ep.identity = "shop", pod, 1234
        ep.labels.extend([f"k8s:app={app}", "k8s:io.kubernetes.pod.namespace=shop"])
        ep.workloads.add(name=app, kind="Deployment")
    return flow


def fill(directory: str, database: str, count: int) -> None:
    """`count` flows over the last 23 h into chdb://directory?database=...: up to 50,000 made in Python,
    the rest copies of them made by ClickHouse (shifted back in time, new uuids; the views fire)."""
    from storage import open_store
    store = open_store(f"chdb://{directory}?database={database}")
    store.migrate()
    made = min(count, 50_000)
    copies = -(-count // made)
    span = 23 * 3600 * NS // copies
    base, start = template(), time.time_ns() - span
    flows = []
    for i in range(made):
        flow = flow_pb2.Flow()
        flow.CopyFrom(base)
        flow.time.FromNanoseconds(start + i * (span // made))
        flow.uuid = str(uuid.uuid4())
        flows.append(flow)
    store.insert_flows(flows, [f.SerializeToString() for f in flows])
    table = f"{store.db}.flows"
    names = [row[0] for row in store.backend.rows(
        f"SELECT name FROM system.columns WHERE database = '{store.db}' AND table = 'flows' "
        "AND default_kind NOT IN ('ALIAS', 'MATERIALIZED') ORDER BY position")]
    copied = {"time_ns": f"time_ns - number * {span}", "uuid_bin": "generateUUIDv4()", "uuid_str": "''"}
    for first in range(1, copies, 10):  # ten copies per INSERT ... SELECT
        store.backend.execute(
            f"INSERT INTO {table} ({', '.join(names)}) SELECT {', '.join(copied.get(n, n) for n in names)} "
            f"FROM {table} AS f, numbers({first}, {min(10, copies - first)}) AS n WHERE time_ns >= {start}")
    store.close()


def measure(directory: str, database: str) -> dict:
    # No collector answers: the relay serves storage only.
    relay = subprocess.Popen([PY, "-m", "flowscope", "relay", "--listen-address", "localhost:0", "--peer", "none=localhost:1",
                              "--storage", f"chdb://{directory}?database={database}"],
                             cwd=ROOT, stderr=subprocess.PIPE, text=True)
    port = 0
    for line in relay.stderr:
        found = re.search(r"Observer API on port (\d+)", line)
        if found:
            port = int(found.group(1))
            break
    if not port:
        raise SystemExit("relay did not start")
    try:
        started = time.monotonic()
        observe = subprocess.run([PY, "-m", "flowscope", "observe", "--server", f"localhost:{port}",
                                  "--since", "24h", "--all", "-o", "json"], cwd=ROOT, capture_output=True,
                                 text=True, check=True)
        seconds = time.monotonic() - started
        with open(f"/proc/{relay.pid}/status") as status:
            peak_kib = int(re.search(r"VmHWM:\s+(\d+)", status.read()).group(1))
    finally:
        relay.terminate()
        relay.wait(timeout=30)
    lines = observe.stdout.splitlines()
    uuids = {re.search(r'"uuid":"([^"]+)"', line).group(1) for line in lines if '"flow"' in line}
    return {"flows": len(lines), "distinct": len(uuids), "peak_mib": peak_kib / 1024, "seconds": seconds}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--small", type=int, default=50_000)
    parser.add_argument("--large", type=int, default=5_000_000)
    parser.add_argument("--fill", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.fill:
        directory, database, count = args.fill
        return fill(directory, database, int(count))
    with tempfile.TemporaryDirectory(prefix="fs-bench-history-") as directory:
        for name, count in (("small", args.small), ("large", args.large)):
            started = time.monotonic()
            # chdb opens a directory in one process only: each fill is a process that exits before the relay.
            subprocess.run([PY, os.path.abspath(__file__), "--fill", directory, name, str(count)], check=True)
            print(f"filled {name}: {count} flows in {time.monotonic() - started:.0f} s", flush=True)
        results = {name: measure(directory, name) for name in ("small", "large")}
    print(f"{'stored flows':>14} {'received':>10} {'distinct':>10} {'relay peak RSS MiB':>19} {'seconds':>8}")
    for name, count in (("small", args.small), ("large", args.large)):
        r = results[name]
        print(f"{count:>14,} {r['flows']:>10,} {r['distinct']:>10,} {r['peak_mib']:>19.0f} {r['seconds']:>8.1f}")
    print(f"peak RSS large / small: {results['large']['peak_mib'] / results['small']['peak_mib']:.2f}x "
          f"(load average {os.getloadavg()[0]:.1f})")


if __name__ == "__main__":
    main()
