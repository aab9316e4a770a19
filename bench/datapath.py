"""Datapath benchmark, run by hand as root: `.venv/bin/python bench/datapath.py [--seconds 5]`.

Side by side in one run, between two lab pods:
  - iperf3 throughput and TCP request/response latency with the collector detached, attached at
    aggregation medium, attached at aggregation none;
  - a burst of short connections (connect + close) at a target rate with the collector attached
    (medium): connections/s reached, events/s read, lost events, collector CPU;
  - wrk with `Connection: close` against nginx (a new connection per HTTP request, L7 parsed too);
  - the decoder alone (decode + enrich into flow.Flow) on one core.
Results go to docs/benchmarks.md (Datapath) by hand.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import secrets
import shutil
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import lab  # noqa: E402
from collector.agent import Collector, CollectorConfig  # noqa: E402
from collector.datapath import DatapathConfig  # noqa: E402

PY = sys.executable
RR_SERVER = """
import socket, threading
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); s.bind(("0.0.0.0", 7000)); s.listen(128)
def serve(c):
    while True:
        d = c.recv(64)
        if not d: break
        c.sendall(d)
    c.close()
while True:
    c, _ = s.accept(); threading.Thread(target=serve, args=(c,), daemon=True).start()
"""
ACCEPT_CLOSE = """
import socket
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); s.bind(("0.0.0.0", 7001)); s.listen(4096)
while True:
    c, _ = s.accept(); c.close()
"""
RR_CLIENT = """
import socket, sys, time
s = socket.create_connection((sys.argv[1], 7000)); s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
lat = []
for _ in range(int(sys.argv[2])):
    t = time.perf_counter_ns(); s.sendall(b"x" * 64); s.recv(64); lat.append(time.perf_counter_ns() - t)
lat.sort(); print(lat[len(lat) // 2], lat[int(len(lat) * 0.99)])
"""
CONNECT_LOOP = """
import socket, sys, time
host, rate, seconds = sys.argv[1], float(sys.argv[2]), float(sys.argv[3])
n, start = 0, time.monotonic()
while (now := time.monotonic()) - start < seconds:
    if n > (now - start) * rate:
        time.sleep(0.0005); continue
    try:
        c = socket.create_connection((host, 7001)); c.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\\1\\0\\0\\0\\0\\0\\0\\0"); c.close()
    except OSError:
        pass
    n += 1
print(n)
"""


NGINX_CONF = """
worker_processes 1;
pid {dir}/nginx.pid;
error_log {dir}/error.log;
events {{ worker_connections 8192; }}
http {{
    access_log off;
    client_body_temp_path {dir}; proxy_temp_path {dir}; fastcgi_temp_path {dir}; uwsgi_temp_path {dir};
    scgi_temp_path {dir};
    server {{ listen {port} backlog=4096; location / {{ return 204; }} }}
}}
"""


def ns_cmd(netns: str, *cmd: str) -> list[str]:
    return ["ip", "netns", "exec", netns, *cmd]


def topology(workdir: str) -> dict:
    with open(os.path.join(workdir, "nginx.conf"), "w") as conf:
        conf.write(NGINX_CONF.format(dir=workdir, port=7080))
    return {"name": "b" + secrets.token_hex(2),
            "pods": [{"name": "client", "labels": {"app": "client"}},
                     {"name": "server", "labels": {"app": "server"},
                      "commands": ["exec iperf3 -s -p 5201", f"exec {PY} -c '{RR_SERVER}'",
                                   f"exec {PY} -c '{ACCEPT_CLOSE}'",
                                   f"exec nginx -c {workdir}/nginx.conf -g 'daemon off;'"]}]}


def iperf(client_ns: str, server_ip: str, seconds: int) -> float:
    for _attempt in range(5):  # "server busy" right after the previous run: try again
        out = subprocess.run(ns_cmd(client_ns, "iperf3", "-c", server_ip, "-p", "5201", "-t", str(seconds), "-J"),
                             capture_output=True, text=True).stdout
        result = json.loads(out)
        if "error" not in result:
            return result["end"]["sum_received"]["bits_per_second"] / 1e9
        time.sleep(1)
    raise RuntimeError(f"iperf3: {result['error']}")


def latency(client_ns: str, server_ip: str, count: int = 5000) -> tuple[float, float]:
    out = subprocess.run(ns_cmd(client_ns, PY, "-c", RR_CLIENT, server_ip, str(count)),
                         capture_output=True, text=True, check=True).stdout.split()
    return int(out[0]) / 1000, int(out[1]) / 1000


def start_collector(state: lab.LabState, aggregation: str) -> tuple[Collector, str]:
    pin_dir = f"/sys/fs/bpf/fsbench-{secrets.token_hex(3)}"
    config = CollectorConfig(node_name=state.pods[0].node, lab_state=state.path, listen_address=None,
                             unix_socket=None, identity_state=None,
                             datapath=DatapathConfig(aggregation=aggregation, pin_dir=pin_dir, sync_interval_s=1.0,
                                                     close_grace_s=1.0))
    collector = Collector(config)
    collector.start()
    return collector, pin_dir


def stop_collector(collector: Collector, pin_dir: str) -> None:
    collector.stop(grace_s=0)
    shutil.rmtree(pin_dir, ignore_errors=True)


def connection_burst(state: lab.LabState, client_ns: str, server_ip: str, rate: float, seconds: float) -> dict:
    collector, pin_dir = start_collector(state, "medium")
    try:
        time.sleep(1)
        stats = collector.datapath.stats
        events0, lost0 = stats.events, stats.lost
        cpu0 = resource.getrusage(resource.RUSAGE_SELF)
        procs = [subprocess.Popen(ns_cmd(client_ns, PY, "-c", CONNECT_LOOP, server_ip, str(rate / 2), str(seconds)),
                                  stdout=subprocess.PIPE, text=True) for _ in range(2)]
        made = sum(int(p.communicate()[0]) for p in procs)
        time.sleep(1.5)  # let the reader drain
        cpu1 = resource.getrusage(resource.RUSAGE_SELF)
        cpu = (cpu1.ru_utime + cpu1.ru_stime) - (cpu0.ru_utime + cpu0.ru_stime)
        return {"rate": made / seconds, "events": (stats.events - events0) / seconds,
                "lost": stats.lost - lost0, "cpu": cpu / (seconds + 1.5)}
    finally:
        stop_collector(collector, pin_dir)


def http_burst(state: lab.LabState, client_ns: str, server_ip: str, seconds: int = 5) -> dict:
    """wrk with `Connection: close` against nginx: one new connection per HTTP request, L7 parsed too."""
    collector, pin_dir = start_collector(state, "medium")
    try:
        time.sleep(1)
        stats = collector.datapath.stats
        events0, lost0, flows0 = stats.events, stats.lost, stats.flows
        cpu0 = resource.getrusage(resource.RUSAGE_SELF)
        out = subprocess.run(ns_cmd(client_ns, "wrk", "-t2", "-c8", f"-d{seconds}s", "-H", "Connection: close",
                                    f"http://{server_ip}:7080/"), capture_output=True, text=True, check=True).stdout
        time.sleep(1.5)
        cpu1 = resource.getrusage(resource.RUSAGE_SELF)
        requests = int(next(line for line in out.splitlines() if "requests in" in line).split()[0])
        cpu = (cpu1.ru_utime + cpu1.ru_stime) - (cpu0.ru_utime + cpu0.ru_stime)
        return {"rate": requests / seconds, "events": (stats.events - events0) / seconds,
                "flows": (stats.flows - flows0) / seconds, "lost": stats.lost - lost0, "cpu": cpu / (seconds + 1.5)}
    finally:
        stop_collector(collector, pin_dir)


def decoder_rate(events: int = 200_000) -> float:
    from collector.datapath.synthetic import decoder, event
    from collector.datapath import events as ev

    dec = decoder()
    raws = [event(sport=40000 + i % 997, kind=ev.EV_FLAGS, is_reply=i % 2) for i in range(1000)]
    start = time.process_time()
    for i in range(events):
        dec.decode(raws[i % 1000])
    return events / (time.process_time() - start)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=5, help="iperf3 duration per run")
    parser.add_argument("--runs", type=int, default=3, help="iperf3 runs per mode (median reported)")
    parser.add_argument("--rates", default="2000,5000,10000", help="short-connection rates to try (per second)")
    args = parser.parse_args()

    workdir = tempfile.mkdtemp(prefix="fsbench-")
    state = lab.up(lab.parse_topology(topology(workdir), source="<bench>"))
    try:
        client, server = (next(h for h in state.pods if h.name.startswith(n)) for n in ("client", "server"))
        time.sleep(1.5)
        # Modes interleaved run by run: other jobs on the machine change the baseline over time.
        results: dict[str, list[tuple]] = {mode: [] for mode in ("detached", "medium", "none")}
        for _ in range(args.runs):
            for mode in results:
                collector = pin_dir = None
                if mode != "detached":
                    collector, pin_dir = start_collector(state, mode)
                try:
                    gbit = iperf(client.netns, server.ipv4, args.seconds)
                    p50, p99 = latency(client.netns, server.ipv4)
                    stats = collector.datapath.stats if collector else None
                finally:
                    if collector:
                        stop_collector(collector, pin_dir)
                results[mode].append((gbit, p50, p99, stats.events if stats else 0, stats.lost if stats else 0))
        rows = []
        for mode, runs in results.items():
            median = lambda i: sorted(r[i] for r in runs)[len(runs) // 2]  # noqa: E731
            rows.append((mode, median(0), median(1), median(2), sum(r[3] for r in runs), sum(r[4] for r in runs)))
        base = rows[0][1]
        print(f"\n{'mode':<10}{'iperf3 Gbit/s':>15}{'ratio':>8}{'RR p50 us':>11}{'RR p99 us':>11}"
              f"{'events':>10}{'lost':>8}")
        for mode, gbit, p50, p99, events, lost in rows:
            print(f"{mode:<10}{gbit:>15.2f}{gbit / base:>8.3f}{p50:>11.1f}{p99:>11.1f}{events:>10}{lost:>8}")

        print(f"\n{'target conn/s':>14}{'made conn/s':>13}{'events/s':>10}{'lost':>8}{'collector CPU':>15}")
        for rate in (float(r) for r in args.rates.split(",")):
            r = connection_burst(state, client.netns, server.ipv4, rate, 5.0)
            print(f"{rate:>14.0f}{r['rate']:>13.0f}{r['events']:>10.0f}{r['lost']:>8}{r['cpu']:>14.2f}c")

        r = http_burst(state, client.netns, server.ipv4)
        print(f"\nwrk, Connection: close, nginx (a new connection per request, HTTP parsed):\n"
              f"{r['rate']:.0f} conn/s, {r['events']:.0f} events/s, {r['flows']:.0f} flows/s, {r['lost']} lost, "
              f"collector CPU {r['cpu']:.2f} cores")
    finally:
        lab.down(state.path)
        shutil.rmtree(workdir, ignore_errors=True)
    print(f"\ndecoder alone (decode + enrich -> flow.Flow): {decoder_rate():,.0f} events/s on one core")
    return 0


if __name__ == "__main__":
    sys.exit(main())
