"""Scale-out benchmark, run by hand:  .venv/bin/python bench/scale_out.py [--flows 150000] [--rounds 2]

A two-shard ClickHouse cluster (Debian's clickhouse-server 18.16, ZooKeeper, ReplicatedReplacingMergeTree
flows_local behind Distributed tables) and `flowscope relay` processes writing their own shard's local
tables (storage URL `write=local`), each following one collector that replays pre-serialized flow
batches (bench/relay.py's "replay" link: the collectors' own CPU is taken out). Side by side, interleaved:

- one relay into one shard: one collector x N flows;
- two relays into two shards: two collectors x N flows, one per relay.

Each case runs in a fresh database (dropped after it); it is timed from the moment every relay is up
(migrated, its Observer API listening: Python's start-up left out) until the last flow is stored. A relay
follows its collector before it says it is up, so the flows already stored then are shown and left out of
the rate and of the CPU per flow. Every flow is checked stored once on its shard (count and distinct
uuids). CPU is read from /proc over the same span for each relay, each server and ZooKeeper (which the
Replicated tables ask at every insert), and each server's for 5 s after it (the merges of the new parts,
idle included): the CPU cost per flow of each component is what sizes a deployment
(docs/scaling.md); the wall rate on this 2-core VM is bounded by its cores, shared by every process.
"""

from __future__ import annotations

import argparse
import importlib.util
import logging
import os
import pathlib
import re
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from lab.testbed.clickhouse import (TEST_PASSWORD, TEST_USER, ClickHouseServer, ZooKeeper,  # noqa: E402
                                    free_port, random_database)
from storage import open_store  # noqa: E402
from storage.cluster import ClusterSpec, Replica, server_config  # noqa: E402

TICK = os.sysconf("SC_CLK_TCK")
TAIL_S = 5.0  # seconds of server CPU counted after the last flow is stored (merges; idle included)


def _bench_relay():
    """bench/relay.py (its name would shadow the relay package): its collector processes."""
    spec = importlib.util.spec_from_file_location("bench_relay", os.path.join(ROOT, "bench", "relay.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def cpu_seconds(pid: int) -> float:
    """User + system CPU of a process and all its threads so far."""
    fields = pathlib.Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


class Cluster:
    """ZooKeeper and two clickhouse-server shards of cluster "flowscope"."""

    def __init__(self, root: pathlib.Path) -> None:
        self.zk = ZooKeeper(root / "zk", free_port())
        self.zk.start()
        self.servers = [ClickHouseServer(path=root / f"shard{i}", tcp_port=free_port(), http_port=free_port(),
                                         interserver_port=free_port()) for i in (1, 2)]
        spec = ClusterSpec("flowscope", tuple((Replica("127.0.0.1", s.tcp_port),) for s in self.servers),
                           (Replica("127.0.0.1", self.zk.port),), user=TEST_USER, password=TEST_PASSWORD)
        for shard, server in enumerate(self.servers, start=1):
            server.extra_config = server_config(spec, shard, 1)
            server.start()

    def stop(self) -> None:
        for server in self.servers:
            server.stop()
        self.zk.stop()


class RelayProcess:
    """`flowscope relay` following one collector into its shard's local tables (write=local)."""

    def __init__(self, peer, url: str, spool: str) -> None:
        env = dict(os.environ, PYTHONPATH=ROOT)
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "flowscope", "relay", "--listen-address", "localhost:0", "--peer",
             f"{peer.name}={peer.address}", "--storage", url, "--http-api-address", ""],
            cwd=spool, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)

    def wait_ready(self) -> None:
        for line in self.proc.stderr:  # up once its Observer API listens (migrated, following)
            if re.search(r"Observer API on port \d+", line):
                break
        else:
            raise RuntimeError(f"relay exited with {self.proc.wait()}")
        # keep reading its log: a full pipe would stop the relay
        threading.Thread(target=self.proc.stderr.read, daemon=True).start()

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(30)


def run_case(cluster: Cluster, bench_relay, shards: int, flows: int, tmp: pathlib.Path) -> dict:
    db = random_database()
    servers = cluster.servers[:shards]
    open_store(servers[0].store_url(db, cluster="flowscope")).migrate()
    collectors = bench_relay.Collectors(shards, flows, link="replay")
    relays = []
    clients = [s.client() for s in servers]
    try:
        for peer, server in zip(collectors.peers, servers):
            # the URL's spool default is /var/lib/flowscope/spool/<host>-<port>-<db>: one per relay
            relays.append(RelayProcess(peer, server.store_url(db, cluster="flowscope", write="local"),
                                       str(tmp)))
        for relay in relays:  # all started at once: none streams long before the others
            relay.wait_ready()

        def stored() -> list[int]:
            return [c.execute(f"SELECT count() FROM {db}.flows_local")[0][0] for c in clients]

        pids = [r.proc.pid for r in relays] + [s.process.pid for s in servers] + [cluster.zk.process.pid]
        cpu0 = [cpu_seconds(p) for p in pids]
        began = time.monotonic()
        before = stored()
        deadline = began + 600
        while sum(stored()) < shards * flows and time.monotonic() < deadline:  # a capped span, not a wait: "once" tells
            time.sleep(0.05)
        elapsed = time.monotonic() - began
        cpu = [cpu_seconds(p) - c for p, c in zip(pids, cpu0)]
        # the servers keep merging the new parts after the last insert: their CPU in the next seconds
        server_pids = pids[shards:-1]
        tail0 = [cpu_seconds(p) for p in server_pids]
        time.sleep(TAIL_S)
        tail = [cpu_seconds(p) - c for p, c in zip(server_pids, tail0)]
        per_shard = [c.execute(f"SELECT count(), uniqExact(uuid) FROM {db}.flows_local")[0] for c in clients]
        # reads go through the Distributed table: it must see every shard's flows
        seen = clients[0].execute(f"SELECT count(), uniqExact(uuid) FROM {db}.flows")[0]
    finally:
        for relay in relays:
            relay.stop()
        collectors.close()
        for c in clients:  # a database left behind would merge in the background of the next case
            c.execute(f"DROP DATABASE IF EXISTS {db}")
    each = [flows - b for b in before]  # flows each relay (and its shard) stored in the span
    counted = sum(each)
    return {"rate": counted / elapsed, "elapsed": elapsed, "before": sum(before), "per_shard": per_shard,
            "relay_us": [c / n * 1e6 for c, n in zip(cpu[:shards], each)],
            "server_us": [c / n * 1e6 for c, n in zip(cpu[shards:-1], each)],
            "tail_us": [c / n * 1e6 for c, n in zip(tail, each)],
            "zk_us": cpu[-1] / counted * 1e6, "cores": sum(cpu) / elapsed,
            "once": all(n == d == flows for n, d in per_shard) and seen == (shards * flows,) * 2}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--flows", type=int, default=150_000, help="flows per collector (one per relay)")
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    # clickhouse_driver logs each refused connection while a server starts: not news here
    logging.getLogger("clickhouse_driver").setLevel(logging.CRITICAL)
    bench_relay = _bench_relay()
    tmp = pathlib.Path(tempfile.mkdtemp(prefix="flowscope-bench-scale-"))
    cluster = Cluster(tmp)
    try:
        print(f"load average at start: {' '.join(f'{x:.2f}' for x in os.getloadavg())}; "
              f"{args.flows} flows per relay; CPU in us per flow stored by that relay or shard")
        print(f"{'case':<26}{'flows/s':>9}{'s':>6}{'early':>7}  {'relay CPU':<12}{'server CPU':<12}"
              f"{'+5 s after':<12}{'ZK/flow':>8}{'cores':>6}  stored once (rows, distinct per shard)")
        for _ in range(args.rounds):
            for shards in (1, 2):
                r = run_case(cluster, bench_relay, shards, args.flows, tmp)
                label = "one relay -> one shard" if shards == 1 else "two relays -> two shards"
                relay_us = "/".join(f"{u:.1f}" for u in r["relay_us"])
                server_us = "/".join(f"{u:.1f}" for u in r["server_us"])
                tail_us = "/".join(f"{u:.1f}" for u in r["tail_us"])
                print(f"{label:<26}{r['rate']:>9.0f}{r['elapsed']:>6.2f}{r['before']:>7}  {relay_us:<12}"
                      f"{server_us:<12}{tail_us:<12}{r['zk_us']:>8.2f}{r['cores']:>6.2f}  "
                      f"{r['once']} {r['per_shard']}",
                      flush=True)
        print(f"load average at the end: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    finally:
        cluster.stop()


if __name__ == "__main__":
    main()
