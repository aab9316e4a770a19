"""The collector's event path under new HTTP connections, by hand as root:
`sudo .venv/bin/python bench/events.py [--rates 0,10000] [--seconds 5] [--detached] [--before OLD_TREE]
[--server c] [--wrk-threads 1]`,
or without the kernel: `bench/events.py --in-process 5000 [--aggregation medium,max] [--before OLD_TREE]`;
both take `--gc default,freeze,tuned` (garbage-collector settings side by side, each collection timed).

Two lab pods; nginx (or `--server c`, a one-thread epoll server in C) answering 204 in the server pod
(port 8080, an L7 port: every request and response is parsed);
wrk in the client pod with `Connection: close`, at its maximum or paced to a rate, so HTTP requests
open new TCP connections (SYN, SYN-ACK, request, response, FINs, seen on both pods' devices). The
collector runs in a child process of its own, fresh per run, with Prometheus metrics on (the hooks
the DaemonSet's `--metrics-address` adds): its CPU (utime + stime) is its own. Side by side: each
pair (before, after) back to back, variants interleaved round by round so the machine's other load
changes all of them alike. `--before` names another checkout (e.g. a `git worktree` of the previous
commit) whose collector code the child imports instead of this one.

Per run: TCP connections the server accepted (its namespace's PassiveOpens; wrk sends ~1.3 requests
per connection), events read from the perf rings, events lost (the kernel's count: LostEvent), flows
published, the collector's cores, CPU seconds per 10,000 connections (over the load and until the
collector caught up: nothing read or published for `--drain` s; "caught up after" is when its last
change came, after the load), the most events read but not yet decoded at once (how far decoding fell
behind; `-` for code without that count) and the load average before the run. Results go to
docs/benchmarks.md by hand.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import re
import resource
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PORT = 8080
PACED_CONNECTIONS = 200  # wrk connections open at once when paced
# `--server c`: a cheaper load than nginx's for the same requests (nginx and wrk alone made ~8,700
# conn/s on these 2 cores), compiled into the run's directory with the system's cc.
C_SERVER = r"""#define _GNU_SOURCE
/* One epoll thread: accept, read a request, answer 204, close (the server closes first, as nginx does). */
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

static const char RESPONSE[] = "HTTP/1.1 204 No Content\r\nServer: tiny\r\nConnection: close\r\n\r\n";

int main(int argc, char **argv) {
    int one = 1, lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons(atoi(argv[1]))};
    setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (bind(lfd, (struct sockaddr *)&addr, sizeof addr) || listen(lfd, 4096)) return 1;
    int ep = epoll_create1(0);
    struct epoll_event ev = {.events = EPOLLIN, .data.fd = lfd}, events[256];
    epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &ev);
    char buf[4096];
    for (;;) {
        int n = epoll_wait(ep, events, 256, -1);
        for (int i = 0; i < n; i++) {
            int fd = events[i].data.fd;
            if (fd == lfd) {
                int c;
                while ((c = accept4(lfd, NULL, NULL, SOCK_NONBLOCK)) >= 0) {
                    struct epoll_event cev = {.events = EPOLLIN, .data.fd = c};
                    epoll_ctl(ep, EPOLL_CTL_ADD, c, &cev);
                }
                continue;
            }
            ssize_t got = read(fd, buf, sizeof buf);
            if (got < 0) continue;  /* EAGAIN: wait for the request */
            if (got > 0 && !memmem(buf, got, "\r\n\r\n", 4)) continue;  /* a request split across reads: wrk's are one segment */
            if (got > 0) write(fd, RESPONSE, sizeof RESPONSE - 1);
            close(fd);
        }
    }
}
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_wrk(client_ns: str, server_ip: str, rate: int, seconds: int, workdir: str, threads: int = 2,
            connections: int = 8) -> str:
    """wrk's output. Rate 0: wrk at its own maximum (`connections` open at once: -c8 as
    docs/benchmarks.md measured it before);
    otherwise paced by its Lua delay(): each of PACED_CONNECTIONS waits between requests. hey
    -disable-keepalive reached only ~1,700 connections/s here."""
    script = os.path.join(workdir, "pace.lua")
    with open(script, "w") as f:
        f.write(f"function delay() return {round(PACED_CONNECTIONS * 1000 / rate)} end\n" if rate else "")
    return subprocess.run(["ip", "netns", "exec", client_ns, "wrk", f"-t{threads}", f"-c{PACED_CONNECTIONS if rate else connections}",
                           f"-d{seconds}s", "-s", script, "-H", "Connection: close", f"http://{server_ip}:{PORT}/"],
                          capture_output=True, text=True, check=True).stdout


def wrk_requests(out: str) -> int:
    return int(re.search(r"(\d+) requests in", out).group(1))


def passive_opens(netns: str) -> int:
    """TCP connections the server's network namespace accepted (its own /proc/net/snmp): wrk answers
    about a quarter of its Connection: close requests on a connection it already had."""
    lines = [line.split() for line in subprocess.run(["ip", "netns", "exec", netns, "cat", "/proc/net/snmp"],
                                                      capture_output=True, text=True, check=True).stdout.splitlines()
             if line.startswith("Tcp:")]
    return int(lines[1][lines[0].index("PassiveOpens")])


class GcPauses:
    """gc.callbacks: each collection's generation, wall duration and objects collected, while `on`."""

    def __init__(self) -> None:
        self.pauses: list[tuple[int, float, int]] = []
        self.on = False
        self._start = 0.0
        gc.callbacks.append(self)

    def __call__(self, phase: str, info: dict) -> None:
        if phase == "start":
            self._start = time.perf_counter()
        elif self.on:
            self.pauses.append((info["generation"], time.perf_counter() - self._start, info["collected"]))

    def report(self, connections: int, runs: int = 1) -> dict:
        """The longest pause, GC seconds per 10,000 connections and full collections, per run."""
        return {"gc_longest_s": max((d for _g, d, _c in self.pauses), default=0.0),
                "gc_s_per_10k": sum(d for _g, d, _c in self.pauses) / runs / max(connections, 1) * 10000,
                "gc_full": sum(g == 2 for g, _d, _c in self.pauses) / runs,
                "gc_collected": sum(c for _g, _d, c in self.pauses) / runs,
                "maxrss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def set_gc(variant: str) -> None:
    """`--gc`: default (the interpreter's), freeze (what exists now out of later collections) or tuned
    (the tree's own settle_gc, since ce73260: what `flowscope collector` does once started)."""
    if variant == "freeze":
        gc.collect()
        gc.freeze()
    elif variant == "tuned":
        from collector.agent import settle_gc

        settle_gc()
    elif variant != "default":
        raise SystemExit(f"--gc {variant!r}: expected default, freeze or tuned")


def child(args: argparse.Namespace) -> int:
    """One run: a collector from `args.tree`, wrk paced to `args.rate`, a JSON line of what happened."""
    sys.path.insert(0, args.tree)
    from collector.agent import Collector, CollectorConfig
    from collector.datapath import DatapathConfig

    pin_dir = f"/sys/fs/bpf/fsev-{secrets.token_hex(3)}"
    extra = {"perf_pages": args.perf_pages} if args.perf_pages else {}
    config = CollectorConfig(node_name=args.node, lab_state=args.state, listen_address=None, unix_socket=None,
                             identity_state=None, metrics_address=f"127.0.0.1:{free_port()}",
                             datapath=DatapathConfig(aggregation=args.aggregation, pin_dir=pin_dir, **extra))
    collector = Collector(config)
    pauses = GcPauses()
    collector.start()
    set_gc(args.gc)
    try:
        time.sleep(1.5)
        pauses.on = True
        stats = collector.datapath.stats
        events0, lost0, flows0 = stats.events, stats.lost, stats.flows
        cpu0 = resource.getrusage(resource.RUSAGE_SELF)
        opens0 = passive_opens(args.server_ns)
        out = run_wrk(args.client_ns, args.server_ip, args.rate, args.seconds, args.workdir, args.wrk_threads,
                      args.wrk_connections)
        connections = passive_opens(args.server_ns) - opens0
        # Until the collector has caught up: a reader that fell behind holds the backlog in the kernel's
        # rings (or, since the reads between steps, in user memory) long after the load ended.
        ended = last_change = time.monotonic()
        seen = None
        while time.monotonic() - last_change < args.drain and time.monotonic() - ended < 120:
            now = (stats.events, stats.lost, stats.flows)
            if now != seen:
                seen, last_change = now, time.monotonic()
            time.sleep(0.2)
        cpu1 = resource.getrusage(resource.RUSAGE_SELF)
        pauses.on = False
        requests = wrk_requests(out)
        cpu = (cpu1.ru_utime + cpu1.ru_stime) - (cpu0.ru_utime + cpu0.ru_stime)
        print(json.dumps({"connections": connections, "requests": requests, "events": stats.events - events0, "lost": stats.lost - lost0,
                          "flows": stats.flows - flows0, "cpu_s": cpu, "wall_s": args.seconds + time.monotonic() - ended,
                          "behind_s": last_change - ended,
                          "pending_max": getattr(stats, "pending_max", None),
                          "errors": " ".join(re.findall(r"Socket errors: .*", out)),
                          **pauses.report(connections)}))
    finally:
        collector.stop(grace_s=0)
        shutil.rmtree(pin_dir, ignore_errors=True)
    return 0


REQUEST = b"GET / HTTP/1.1\r\nHost: 10.244.1.3:8080\r\nConnection: close\r\n\r\n"
RESPONSE = (b"HTTP/1.1 204 No Content\r\nServer: nginx/1.22.1\r\nDate: Wed, 02 Dec 2026 18:00:00 GMT\r\n"
            b"Connection: close\r\n\r\n")


def connection_events(ts: int, port: int) -> list[bytes]:
    """The events the datapath sends at aggregation medium for one `Connection: close` request between
    two local pods (client 10.244.1.2 on ifindex 7, server 10.244.1.3 on ifindex 8): start, reply and
    both FINs on each device, the request and the response payload on the server's."""
    import ipaddress

    from collector.datapath import events as ev

    def event(offset, forward, kind, obs, flags, ifindex, payload=b""):
        src, dst, sport, dport = ("10.244.1.2", "10.244.1.3", port, PORT) if forward else \
            ("10.244.1.3", "10.244.1.2", PORT, port)
        fields = dict(ts_ns=ts + offset, first_seen_ns=ts, packets_fwd=3, bytes_fwd=300, packets_rev=2,
                      bytes_rev=200, saddr=ipaddress.ip_address(src).packed.ljust(16, b"\0"),
                      daddr=ipaddress.ip_address(dst).packed.ljust(16, b"\0"), ifindex=ifindex, skb_len=74,
                      policy_id=0, remote_identity=0, sport=sport, dport=dport, payload_off=0, cap_len=len(payload),
                      family=4, proto=6, kind=kind, obs=obs, is_reply=int(not forward), tcp_flags=flags,
                      verdict=ev.VERDICT_FORWARDED, policy_action=0, policy_match=0, l7=ev.L7_PREFIX if payload else 0,
                      flags_fwd=0x1b, flags_rev=0x1b, seg_len=len(payload))
        return ev.EVENT.pack(*ev.FlowEvent(**fields)) + payload

    out = []
    for ifindex, out_obs in ((7, ev.OBS_FROM_POD), (8, ev.OBS_TO_POD)):  # the originator's packets on each device
        in_obs = 3 - out_obs
        out += [event(0, True, ev.EV_NEW, out_obs, 0x02, ifindex), event(1000, False, ev.EV_REPLY, in_obs, 0x12, ifindex)]
        if ifindex == 8:
            out += [event(2000, True, ev.EV_NONE, out_obs, 0x18, ifindex, REQUEST),
                    event(3000, False, ev.EV_NONE, in_obs, 0x18, ifindex, RESPONSE)]
        out += [event(4000, False, ev.EV_FLAGS, in_obs, 0x11, ifindex), event(5000, True, ev.EV_FLAGS, out_obs, 0x11, ifindex)]
    return out


def end_event(start):
    """The end event the connection-table sweep reports for the connection `start` (an EV_NEW) opened."""
    from collector.datapath import events as ev

    return start._replace(kind=ev.EV_END, ts_ns=start.ts_ns + 5000, tcp_flags=0x1b, packets_fwd=5, bytes_fwd=400)


def sweep(datapath, decoder, ends: list) -> None:
    """What Datapath.sweep does with the connections it removed (not the map walk: that needs the
    kernel), as the tree under test does it: its own `report_ended` where it has one; else flows as
    bytes where it has `_read_between`, as messages before that."""
    if hasattr(datapath, "report_ended"):
        datapath.report_ended(ends)
        return
    encoded = hasattr(datapath, "_read_between")
    flows = []
    for event in ends:
        decoder.close_connection(event)
        flows += decoder.decode_event_encoded(event) if encoded else decoder.decode_event(event)
        if len(flows) >= 64:
            datapath._publish(flows)
            flows = []
    datapath._publish(flows)


def in_process(args: argparse.Namespace) -> int:
    """CPU per connection of the collector's own decode and publish (Datapath._release -> decoder, L7
    parser -> Observer, with the metrics hooks `--metrics-address` adds if asked) and of its two end
    flows (sweep), no kernel: best of 3."""
    sys.path.insert(0, args.tree)
    from prometheus_client import CollectorRegistry

    from collector.datapath import DatapathConfig, Decoder, Enricher
    from collector.datapath import events as ev
    from collector.datapath.datapath import Datapath
    from collector.identity import IdentityAllocator
    from collector.l7 import FqdnCache, L7Dispatcher
    from collector.metrics import DEFAULT_METRICS, FlowMetrics, HealthMetrics
    from collector.observer import Observer
    from common.endpoints import Endpoint, EndpointCache

    pauses = GcPauses()
    set_gc(args.gc)  # as the collector does once started: before any event is read
    pods = [Endpoint(namespace="ev", pod_name=name, ips=(ip,), labels={"app": name}, device=f"lxc{i}", ifindex=i)
            for i, (name, ip) in enumerate((("client", "10.244.1.2"), ("server", "10.244.1.3")), start=7)]
    warm = 1000
    events, ts = [], 10**12
    # At aggregation max the kernel sends a connection's start and its payload only.
    sent = (ev.EV_NEW, ev.EV_NONE) if args.aggregation == "max" else tuple(range(len(ev.KIND_NAMES)))
    for i in range(args.in_process + warm):
        events += [(ts, raw) for raw in connection_events(ts, 10000 + i % 50000) if ev.unpack_event(raw).kind in sent]
        ts += 100_000
    per_conn = len(events) // (args.in_process + warm)
    ends = [end_event(ev.unpack_event(raw)) for _ts, raw in events[warm * per_conn:]
            if ev.unpack_event(raw).kind == ev.EV_NEW]
    best = float("inf")
    for _ in range(3):
        cache = EndpointCache("node-1")
        cache.replace(pods)
        names = FqdnCache()
        observer = Observer("node-1", 1 << 20)
        if args.metrics:
            registry = CollectorRegistry()
            hooks = getattr(observer, "encoded_hooks", observer.hooks)  # as the tree's agent installs them
            hooks += [FlowMetrics(list(DEFAULT_METRICS), registry).observe, HealthMetrics(registry).observe]
        decoder = Decoder(Enricher(cache, IdentityAllocator()), "node-1", l7=L7Dispatcher(fqdn=names), names=names)
        datapath = Datapath(DatapathConfig(aggregation=args.aggregation), cache, decoder, observer.publish_many)
        datapath._pending = events[:warm * per_conn]
        datapath._release(1 << 62)
        datapath._pending = events[warm * per_conn:]
        warm_flows = observer.status().seen_flows
        start = time.process_time()
        pauses.on = True
        datapath._release(1 << 62)
        sweep(datapath, decoder, ends)
        pauses.on = False
        best = min(best, time.process_time() - start)
    flows = observer.status().seen_flows - warm_flows
    print(json.dumps({"us_per_conn": best / args.in_process * 1e6, "events_per_conn": per_conn,
                      "flows_per_conn": flows / args.in_process, **pauses.report(args.in_process, runs=3)}))
    return 0


def run_variant(tree: str, aggregation: str, rate: int, state, client, server, args, variant: str) -> dict:
    load = os.getloadavg()[0]
    cmd = [sys.executable, os.path.abspath(__file__), "--child", "--tree", tree, "--aggregation", aggregation,
           "--state", state.path, "--node", client.node, "--client-ns", client.netns, "--server-ns", server.netns,
           "--server-ip", server.ipv4,
           "--workdir", args.workdir, "--rate", str(rate), "--seconds", str(args.seconds), "--drain", str(args.drain),
           "--wrk-threads", str(args.wrk_threads), "--wrk-connections", str(args.wrk_connections), "--gc", variant]
    if args.perf_pages:
        cmd += ["--perf-pages", str(args.perf_pages)]
    done = subprocess.run(cmd, capture_output=True, text=True, cwd=tree)
    if done.returncode != 0:
        raise RuntimeError(f"run {tree} {aggregation} failed:\n{done.stderr[-3000:]}")
    result = json.loads(done.stdout.strip().splitlines()[-1])
    result["load"] = load
    return result


def server_program(kind: str, workdir: str) -> str:
    """The server pod's command answering 204 on PORT: nginx, or C_SERVER built in `workdir`."""
    if kind == "nginx":
        from datapath import NGINX_CONF  # bench/datapath.py's nginx: 204 for every request

        with open(os.path.join(workdir, "nginx.conf"), "w") as conf:
            conf.write(NGINX_CONF.format(dir=workdir, port=PORT))
        return f"exec nginx -c {workdir}/nginx.conf -g 'daemon off;'"
    with open(os.path.join(workdir, "server.c"), "w") as f:
        f.write(C_SERVER)
    subprocess.run(["cc", "-O2", "-o", os.path.join(workdir, "server"), os.path.join(workdir, "server.c")], check=True)
    return f"exec {workdir}/server {PORT}"


def compare_in_process(args: argparse.Namespace) -> int:
    trees = ([("before", os.path.abspath(args.before))] if args.before else []) + [("after", HERE)]
    print(f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, {args.in_process} connections (Connection: close: "
          "medium 10 ring events, max 4, and 2 end flows each), best of 3")
    print("| round | code | gc | aggregation | metrics hooks | events/conn | flows/conn | CPU µs per connection "
          "| cores per 10k conn/s | longest GC pause ms | GC ms per 10k conn | full collections | max RSS MB "
          "| load avg |")
    print("|---|---|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for round_no in range(args.rounds):
        for level in [level for level in args.aggregation.split(",") if level]:
            for metrics in (False, True):
                for (name, tree), variant in variants(trees, args.gc):
                    load = os.getloadavg()[0]
                    cmd = [sys.executable, os.path.abspath(__file__), "--child", "--tree", tree, "--in-process",
                           str(args.in_process), "--aggregation", level, "--gc", variant] + \
                        (["--metrics"] if metrics else [])
                    done = subprocess.run(cmd, capture_output=True, text=True, cwd=tree, check=True)
                    r = json.loads(done.stdout.strip().splitlines()[-1])
                    print(f"| {round_no + 1} | {name} | {variant} | {level} | {'on' if metrics else 'off'} "
                          f"| {r['events_per_conn']} | {r['flows_per_conn']:.1f} | {r['us_per_conn']:.0f} "
                          f"| {r['us_per_conn'] / 100:.2f} | {gc_columns(r)} | {load:.1f} |", flush=True)
    return 0


def variants(trees: list[tuple[str, str]], gc_variants: str) -> list[tuple[tuple[str, str], str]]:
    """Each tree with each `--gc` variant, side by side."""
    return [(tree, variant) for tree in trees for variant in gc_variants.split(",") if variant]


def gc_columns(r: dict) -> str:
    return (f"{r['gc_longest_s'] * 1000:.1f} | {r['gc_s_per_10k'] * 1000:.1f} | {r['gc_full']:.1f} "
            f"| {r['maxrss_mb']:.0f}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rates", default="0,10000",
                        help="new HTTP connections per second to pace wrk to, comma-separated (0: wrk's maximum)")
    parser.add_argument("--seconds", type=int, default=5)
    parser.add_argument("--drain", type=float, default=3.5,
                        help="after the load, wait until nothing changed for this long (> the sweep's close grace "
                             "+ its interval, 3 s); the CPU counts until then")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--aggregation", default="medium,max", help="comma-separated levels to compare")
    parser.add_argument("--before", help="another source tree to compare against (its collector code)")
    parser.add_argument("--detached", action="store_true", help="also run the load with no collector")
    parser.add_argument("--server", choices=("nginx", "c"), default="nginx",
                        help="what answers 204 in the server pod: nginx, or a one-thread epoll server in C (cheaper)")
    parser.add_argument("--wrk-threads", type=int, default=2)
    parser.add_argument("--wrk-connections", type=int, default=8, help="connections open at once at wrk's maximum")
    parser.add_argument("--perf-pages", type=int, default=0, help="perf ring pages per CPU (0: the default)")
    parser.add_argument("--in-process", type=int, default=0, metavar="N",
                        help="no kernel, no root: N synthetic connections' events through decode and publish")
    parser.add_argument("--gc", default="default",
                        help="garbage-collector settings to compare, comma-separated: default, freeze (gc.freeze() "
                             "once started), tuned (the tree's settle_gc: what `flowscope collector` does)")
    parser.add_argument("--metrics", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--rate", type=int, default=0, help=argparse.SUPPRESS)
    for name in ("--tree", "--workdir", "--state", "--node", "--client-ns", "--server-ns", "--server-ip"):
        parser.add_argument(name, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        return in_process(args) if args.in_process else child(args)
    if args.in_process:
        return compare_in_process(args)

    sys.path.insert(0, HERE)
    import lab

    trees = ([("before", os.path.abspath(args.before))] if args.before else []) + [("after", HERE)]
    levels = [level for level in args.aggregation.split(",") if level]
    rates = [int(rate) for rate in args.rates.split(",") if rate]
    workdir = args.workdir = tempfile.mkdtemp(prefix="fsev-")
    server_command = server_program(args.server, workdir)
    topology = {"name": "e" + secrets.token_hex(2),
                "pods": [{"name": "client", "labels": {"app": "client"}},
                         {"name": "server", "labels": {"app": "server"},
                          "commands": [server_command]}]}
    state = lab.up(lab.parse_topology(topology, source="<bench>"))
    rows = []
    try:
        client, server = (next(h for h in state.pods if h.name.startswith(n)) for n in ("client", "server"))
        time.sleep(1.5)
        for round_no in range(args.rounds):
            for rate in rates:
                if args.detached:  # the load alone: what this machine's wrk and nginx reach without a collector
                    load = os.getloadavg()[0]
                    opens0 = passive_opens(server.netns)
                    run_wrk(client.netns, server.ipv4, rate, args.seconds, workdir, args.wrk_threads, args.wrk_connections)
                    made = passive_opens(server.netns) - opens0
                    rows.append((round_no + 1, rate, "-", "no collector",
                                 {"connections": made, "events": 0, "lost": 0, "flows": 0, "cpu_s": 0, "wall_s": 1,
                                  "pending_max": None, "load": load}))
                for level in levels:
                    for (name, tree), variant in variants(trees, args.gc):  # back to back: the same load on each
                        r = run_variant(tree, level, rate, state, client, server, args, variant)
                        rows.append((round_no + 1, rate, f"{name} {variant}", level, r))
                        print(f"round {round_no + 1} {name} {variant} {level} {rate}: {json.dumps(r)}", flush=True)
    finally:
        lab.down(state.path)
        shutil.rmtree(workdir, ignore_errors=True)
    print(f"\n{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, {args.seconds} s per run")
    print("| round | wrk paced to | code | aggregation | conn/s made | events sent/conn | events lost | flows/conn "
          "| collector cores | CPU s per 10k conn | most events waiting | caught up after s "
          "| longest GC pause ms | GC ms per 10k conn | full collections | max RSS MB | load avg |")
    print("|---|---:|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for round_no, rate, name, level, r in rows:
        conns = max(r["connections"], 1)
        print(f"| {round_no} | {rate or 'max'} | {name} | {level} | {r['connections'] / args.seconds:,.0f} "
              f"| {(r['events'] + r['lost']) / conns:.1f} | {r['lost']:,} | {r['flows'] / conns:.1f} "
              f"| {r['cpu_s'] / r['wall_s']:.2f} | {r['cpu_s'] / conns * 10000:.2f} "
              f"| {'-' if r['pending_max'] is None else format(r['pending_max'], ',')} | {r.get('behind_s', 0):.1f} "
              f"| {gc_columns(r) if 'gc_full' in r else '- | - | - | -'} | {r['load']:.1f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
