"""SDK benchmark, run by hand:  .venv/bin/python bench/sdk.py [--flows 1000000] [--batch-rows 65536]

Fills an embedded store (chdb, a temporary directory) with N flows over one hour, then reads the whole
window with flowscope.client in a fresh process per mode, side by side:
  stream  Client.flow_batches(): RecordBatches of at most --batch-rows rows, each dropped after use
  table   Client.flows(): the whole window as one pyarrow Table
and prints rows read, batches, the largest batch, seconds and the process's peak RSS (ru_maxrss) above
its RSS once the store is open.
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

T0 = 1_764_504_000 * 1_000_000_000  # 2025-11-30 12:00 UTC
HOUR = 3600 * 1_000_000_000


def rss_mb() -> float:
    with open("/proc/self/status") as f:
        line = next(line for line in f if line.startswith("VmRSS:"))
    return int(line.split()[1]) / 1024


def fill(path: str, n: int) -> None:
    from proto.flow import flow_pb2
    from storage import FlowWriter, open_store

    store = open_store(f"chdb://{path}")
    store.migrate()
    writer = FlowWriter(store)
    template = flow_pb2.Flow(verdict=flow_pb2.FORWARDED, Type=flow_pb2.L3_L4, node_name="node-a",
                             traffic_direction=flow_pb2.EGRESS)
    template.IP.source, template.IP.destination, template.IP.ipVersion = "10.244.0.1", "10.244.0.2", 1
    template.l4.TCP.source_port, template.l4.TCP.destination_port = 40000, 8080
    template.source.namespace = template.destination.namespace = "shop"
    template.source.labels.extend(["k8s:app=frontend", "k8s:io.kubernetes.pod.namespace=shop"])
    template.destination.labels.extend(["k8s:app=backend", "k8s:io.kubernetes.pod.namespace=shop"])
    template.destination.pod_name = "backend-0"
    step = HOUR // n
    batch = []
    for i in range(n):
        flow = flow_pb2.Flow()
        flow.CopyFrom(template)
        flow.time.FromNanoseconds(T0 + i * step)
        flow.uuid = f"00000000-0000-4000-8000-{i:012x}"
        flow.source.pod_name = f"frontend-{i % 100}"
        batch.append(flow)
        if len(batch) == 50_000:
            writer.write(batch)
            batch = []
    writer.write(batch)
    writer.close()
    assert store.count(since=T0, until=T0 + HOUR) == n


def read(path: str, mode: str, batch_rows: int) -> None:
    from flowscope.client import Client

    client = Client(storage=f"chdb://{path}")
    base = rss_mb()
    started = time.monotonic()
    rows = batches = largest = 0
    if mode == "stream":
        for batch in client.flow_batches(since=T0, until=T0 + HOUR, batch_rows=batch_rows):
            rows += batch.num_rows
            batches += 1
            largest = max(largest, batch.num_rows)
    else:
        table = client.flows(since=T0, until=T0 + HOUR, batch_rows=batch_rows)
        rows, batches, largest = table.num_rows, len(table.to_batches()), max(b.num_rows for b in table.to_batches())
    seconds = time.monotonic() - started
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"{mode}\t{rows}\t{batches}\t{largest}\t{seconds:.1f}\t{peak - base:.0f}\t{peak:.0f}")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--flows", type=int, default=1_000_000)
    parser.add_argument("--batch-rows", type=int, default=65_536)
    parser.add_argument("--read", choices=("stream", "table"), help=argparse.SUPPRESS)
    parser.add_argument("--dir", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.read:
        read(args.dir, args.read, args.batch_rows)
        return
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "db")
        started = time.monotonic()
        subprocess.run([sys.executable, "-c", f"import sys; sys.path.insert(0, {os.path.dirname(os.path.dirname(os.path.abspath(__file__)))!r}); "
                                    f"from bench.sdk import fill; fill({path!r}, {args.flows})"], check=True)
        print(f"filled {args.flows} flows in {time.monotonic() - started:.0f} s", file=sys.stderr)
        print("mode\trows\tbatches\tlargest batch\tseconds\tpeak RSS above open (MB)\tpeak RSS (MB)")
        for mode in ("stream", "table"):
            subprocess.run([sys.executable, __file__, "--dir", path, "--read", mode, "--batch-rows",
                            str(args.batch_rows)], check=True)


if __name__ == "__main__":
    main()
