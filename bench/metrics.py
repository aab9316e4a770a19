"""Per-flow cost of collector.metrics and the cost of a scrape, side by side with prometheus_client's own
Counter doing the same counting (no cardinality limit, no expiry). Run by hand:

    .venv/bin/python bench/metrics.py [--flows 200000] [--series 10000]
"""

from __future__ import annotations

import argparse
import pathlib
import sys
import time

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))

from prometheus_client import CollectorRegistry, Counter, generate_latest  # noqa: E402

from collector.metrics import DEFAULT_METRICS, FlowMetrics, HealthMetrics  # noqa: E402
from collector.metrics.handlers import VERDICTS, flow_protocol  # noqa: E402
from lab.testbed import sample_flows as sf  # noqa: E402


def per_flow_us(observe, flows, total: int) -> float:
    rounds = max(1, total // len(flows))
    start = time.process_time()
    for _ in range(rounds):
        for flow in flows:
            observe(flow)
    return (time.process_time() - start) / (rounds * len(flows)) * 1e6


def native_flow_counter():
    counter = Counter("hubble_flows_processed_total", "flows", ["protocol", "type", "subtype", "verdict"],
                      registry=CollectorRegistry())

    def observe(flow):
        counter.labels(flow_protocol(flow), "Trace", "", VERDICTS[flow.verdict]).inc()
    return observe


def scrape_ms(registry, repeat: int = 5) -> float:
    start = time.perf_counter()
    for _ in range(repeat):
        generate_latest(registry)
    return (time.perf_counter() - start) / repeat * 1e3


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--flows", type=int, default=200_000)
    parser.add_argument("--series", type=int, default=10_000)
    args = parser.parse_args()
    flows = sf.shop_round()
    rows = [
        ("prometheus_client Counter, flow metric only", per_flow_us(native_flow_counter(), flows, args.flows)),
        ("FlowMetrics('flow')", per_flow_us(FlowMetrics("flow", CollectorRegistry()).observe, flows, args.flows)),
        ("FlowMetrics(DEFAULT_METRICS): 10 handlers", per_flow_us(
            FlowMetrics(DEFAULT_METRICS, CollectorRegistry()).observe, flows, args.flows)),
        ("HealthMetrics.observe", per_flow_us(HealthMetrics(CollectorRegistry()).observe, flows, args.flows)),
    ]
    print("| what | µs per flow | flows/s per core |\n|---|---|---|")
    for name, us in rows:
        print(f"| {name} | {us:.2f} | {1e6 / us:,.0f} |")

    registry = CollectorRegistry()
    metrics = FlowMetrics(["drop:sourceContext=pod;destinationContext=pod"], registry,
                          cardinality_limit=args.series)
    pods = [sf.endpoint("load", f"pod-{i}", "load", 5000 + i) for i in range(args.series * 2)]
    for pod in pods:
        metrics.observe(sf.policy_drop(pod, sf.DB, 5432))
    native = CollectorRegistry()
    counter = Counter("hubble_drop_total", "drops", ["source", "destination", "reason", "protocol"],
                      registry=native)
    for i in range(args.series * 2):
        counter.labels(f"load/pod-{i}", "shop/db-0", "POLICY_DENIED", "TCP").inc()
    print(f"\n| scrape of {args.series * 2:,} distinct pods | series exposed | ms per scrape |\n|---|---|---|")
    print(f"| FlowMetrics, cardinalityLimit={args.series:,} | {len(metrics.vecs[0]):,} | {scrape_ms(registry):.1f} |")
    print(f"| prometheus_client Counter (no limit) | {args.series * 2:,} | {scrape_ms(native):.1f} |")


if __name__ == "__main__":
    main()
