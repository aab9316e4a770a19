"""Cost of policy enforcement in the real datapath, side by side: no policy vs 100 vs 10,000 rules
selecting the server (iperf3 throughput, and the latency of new connections, which are the packets that
meet policy_check), plus compile-and-load time for 1,000 policies. Run by hand as root:

    .venv/bin/python bench/policy.py [--seconds 5] [--connections 500] [--rounds 3]
"""

from __future__ import annotations

import argparse
import json
import pathlib
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))

import lab  # noqa: E402
from enforcer.apply import apply_policies, remove_policies  # noqa: E402
from enforcer.policy import parse_text  # noqa: E402

TOPOLOGY = {
    "name": "bp" + uuid.uuid4().hex[:4],
    "namespaces": {"bench": {}},
    "pods": [
        {"name": "client", "namespace": "bench", "labels": {"app": "client"}},
        {"name": "server", "namespace": "bench", "labels": {"app": "server"},
         "commands": ["exec iperf3 -s", "exec $FLOWSCOPE_PYTHON -m lab.apps.httpd --port 7000 --name server"]},
    ],
}
CONNECT = """import socket, sys, time
ip, n = sys.argv[1], int(sys.argv[2]); out = []
for _ in range(n):
    t = time.perf_counter(); c = socket.create_connection((ip, 7000))
    c.sendall(b'GET /healthz HTTP/1.0\\r\\n\\r\\n'); c.recv(4096); c.close(); out.append(time.perf_counter() - t)
print(' '.join(f'{x:.6f}' for x in out))
"""


def policy_yaml(name: str, ports: list[int]) -> str:
    port_list = ", ".join(f"{{port: {p}}}" for p in ports)
    return (f"apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {{name: {name}, namespace: bench}}\n"
            f"spec:\n  podSelector: {{matchLabels: {{app: server}}}}\n  ingress:\n"
            f"  - from: [{{podSelector: {{matchLabels: {{app: client}}}}}}]\n    ports: [{port_list}]\n")


def rules(n: int) -> list[int]:
    """n single ports, none adjacent (no range merging), always including iperf3's and the server's."""
    return [5201, 7000] + [20000 + 2 * i for i in range(n - 2)]


def measure(running, server_ip: str, seconds: int, connections: int) -> tuple[float, float, float]:
    out = running.exec("client", ["iperf3", "-c", server_ip, "-t", str(seconds), "-J"], timeout=seconds + 30)
    gbps = json.loads(out.stdout)["end"]["sum_received"]["bits_per_second"] / 1e9
    out = running.exec("client", [sys.executable, "-c", CONNECT, server_ip, str(connections)], timeout=300)
    times = sorted(float(x) * 1e6 for x in out.stdout.split())
    return gbps, statistics.mean(times), times[int(len(times) * 0.99) - 1]


class Running:
    def __init__(self, state) -> None:
        self.state = state

    def exec(self, pod: str, cmd: list[str], timeout: float) -> subprocess.CompletedProcess:
        host = next(h for h in self.state.pods if h.name == pod)
        return subprocess.run(["ip", "netns", "exec", host.netns, *cmd], capture_output=True, text=True,
                              timeout=timeout, check=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=5)
    parser.add_argument("--connections", type=int, default=500)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    from collector.agent import Collector, CollectorConfig
    from collector.datapath import DatapathConfig
    from enforcer.datapath import PolicyMaps, PolicyNames, forget

    state = lab.up(lab.parse_topology(TOPOLOGY, source="bench/policy.py"))
    pin_dir = f"/sys/fs/bpf/fsbench-{uuid.uuid4().hex[:6]}"
    ident = tempfile.mkdtemp()
    maps = PolicyMaps.open(pin_dir)
    collector = Collector(CollectorConfig(node_name=state.pods[0].node, lab_state=state.path, listen_address=None,
                                          unix_socket=None, datapath=DatapathConfig(pin_dir=pin_dir),
                                          identity_state=f"{ident}/identities.json"),
                          policy_maps=maps, policy_names=PolicyNames(pin_dir))
    try:
        collector.start()
        running = Running(state)
        endpoints = lab.endpoints_from_state(state.path)
        server_ip = next(h.ipv4 for h in state.pods if h.name == "server")
        time.sleep(1.0)
        configs = (("no policy", 0), ("100 rules", 100), ("10,000 rules", 10_000))
        results: dict[str, list[tuple[float, float, float]]] = {label: [] for label, _ in configs}
        loaded: dict[str, str] = {}
        for r in range(args.rounds):   # interleaved, rotated rounds: other load hits every config alike
            for label, n in configs[r % 3:] + configs[:r % 3]:
                remove_policies(["all"], pin_dir, endpoints, None)
                if n:
                    start = time.perf_counter()
                    report = apply_policies(parse_text(policy_yaml(f"p{n}", rules(n))), pin_dir, endpoints, False,
                                            None)
                    loaded[label] = f"{len(report.result.state.rules)} entries loaded in " \
                                    f"{time.perf_counter() - start:.2f}s"
                results[label].append(measure(running, server_ip, args.seconds, args.connections))
        med = {label: [statistics.median(r[i] for r in rows) for i in range(3)] for label, rows in results.items()}
        base = med["no policy"][0]
        print(f"medians of {args.rounds} interleaved rounds")
        print(f"{'rules':<14}{'Gbit/s':>9}{'ratio':>8}{'conn mean µs':>14}{'conn p99 µs':>13}  load")
        for label, (gbps, mean, p99) in med.items():
            print(f"{label:<14}{gbps:>9.2f}{gbps / base:>8.3f}{mean:>14.0f}{p99:>13.0f}  {loaded.get(label, '')}")

        remove_policies(["all"], pin_dir, endpoints, None)
        text = "---\n".join(policy_yaml(f"p{i}", [30000 + i]) for i in range(1000))
        t0 = time.perf_counter()
        policies = parse_text(text)
        t1 = time.perf_counter()
        report = apply_policies(policies, pin_dir, endpoints, False, None)
        t2 = time.perf_counter()
        print(f"\n1,000 policies: parse {t1 - t0:.2f}s, compile + registry + map writes {t2 - t1:.2f}s "
              f"({len(report.result.state.rules)} rule entries, {report.stats.written} map writes)")
    finally:
        collector.stop(grace_s=0)
        maps.close()
        lab.down(state.path)
        shutil.rmtree(pin_dir, ignore_errors=True)
        forget(pin_dir)
        shutil.rmtree(ident, ignore_errors=True)


if __name__ == "__main__":
    main()
