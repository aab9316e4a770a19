"""L7 parsers and end to end, by hand: `sudo .venv/bin/python bench/l7.py [--e2e-only] [--seconds 2]`.

Real traffic first (as in tests/collector/l7): wrk against nginx (HTTP/1.1 keep-alive, 200/404/500 mix)
and a grpcio client making unary calls against a grpcio server, each in a private network namespace
while tcpdump captures it. Then the captured segments, cut to 512-byte prefixes like the datapath
sends, are loaded into memory and fed to collector.l7.L7Dispatcher on one core, timed by CPU time.
Side by side: the client's own count, the raw segment count, a loop over the same segments that does
nothing (the floor of any per-segment Python work), and the parser.

End to end (`--e2e-only` skips the parsers part): two lab pods, nginx in the server pod (HTTP/1.1
keep-alive on port 8080, an L7 port by default), a real collector started as its own process
(`flowscope collector`, fresh for every run so counts and CPU belong to that run), and a load generator
in the client pod: `hey -q` at fixed request rates (keep-alive, /ok), then wrk at its natural maximum
(200/404/500 mix). Side by side per run: the client's own count, the HTTP request and response flows
the collector published (read back with `flowscope observe --all --type l7 -o jsonpb`), % observed,
lost events (datapath.stats.lost, printed by the collector on exit) and the collector's CPU
(utime+stime of its process from /proc, over the load plus a drain period) as cores per
10,000 requests/s. hey comes from the Debian package `hey`.

TLS (`--tls`): the same pods, nginx also serving HTTPS (HTTP/1.1 keep-alive, port 8443, self-signed), and
runs in pairs at the same load: plaintext (collector with --l7-tls off, the TC path parses) then TLS
(collector with --l7-tls on: uprobes on nginx's libssl, the TLS capture parses). hey is a Go program, its
TLS invisible (reported so), so only nginx's end is probed, as with any client outside the cluster; wrk
links OpenSSL, so its runs probe both ends (the client's copy is read and dropped: the server's end
reports). Side by side: % observed and the collector's cores per 10,000 requests/s.

In process (`--in-process N`, no kernel, no root): N synthetic hey -> nginx requests (request and response
datapath events) through the collector's own decode and publish path, in CPU µs per request: the part of
the end-to-end cost that Python code in collector/ decides, measured in seconds instead of minutes.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import lab  # noqa: E402
from collector.l7 import ConnKey, L7Dispatcher  # noqa: E402
from lab.apps.nginx import nginx_conf  # noqa: E402
from lab.testbed.netns import REPO, background, netns, run, tcpdump, wait_port  # noqa: E402
from lab.testbed.pcap import segments  # noqa: E402
from lab.testbed.wait import wait_for  # noqa: E402

HTTP_PORT, GRPC_PORT, HTTPS_PORT = 8080, 50051, 8443
WRK_MIX = """
local paths = {"/ok", "/missing", "/fail", "/ok"}
local i = 0
request = function() i = i + 1; return wrk.format("GET", paths[(i % 4) + 1]) end
done = function(summary, latency, requests) io.write(string.format("WRK %d\\n", summary.requests)) end
"""


def capture_http(tmp: Path, seconds: int) -> tuple[Path, int, int | None]:
    pcap = tmp / "http.pcap"
    script = tmp / "mix.lua"
    script.write_text(WRK_MIX)
    conf = nginx_conf(tmp, HTTP_PORT, HTTP_PORT + 1)
    with netns() as ns, background(ns, ["nginx", "-c", str(conf), "-p", str(tmp)]):
        wait_port(ns, HTTP_PORT)
        with tcpdump(ns, pcap, f"tcp port {HTTP_PORT}", snaplen=700, strict=False) as info:
            out = run(ns, ["wrk", "-t1", "-c8", f"-d{seconds}s", "-s", str(script),
                           f"http://127.0.0.1:{HTTP_PORT}/"], timeout=seconds + 30).stdout
    return pcap, int(re.search(r"WRK (\d+)", out).group(1)), info["dropped"]


def capture_grpc(tmp: Path, calls: int) -> tuple[Path, int, int | None]:
    pcap = tmp / "grpc.pcap"
    program = str(REPO / "lab/apps/grpc_demo.py")
    with netns() as ns, background(ns, [sys.executable, program, "server", str(GRPC_PORT)], ready="READY"):
        with tcpdump(ns, pcap, f"tcp port {GRPC_PORT}", snaplen=700, strict=False) as info:
            out = run(ns, [sys.executable, program, "load", str(GRPC_PORT), str(calls)], timeout=300).stdout
    return pcap, int(re.search(r"TOTAL (\d+)", out).group(1)), info["dropped"]


def measure(pcap: Path, port: int, protocol: str, repeat: int = 3) -> dict:
    events = [(e[0], ConnKey(*e[1]), *e[2:]) for e in segments(pcap, {port})]
    data = [e for e in events if e[0] == "data"]
    best_floor = best_parse = float("inf")
    for _ in range(repeat):
        start = time.process_time()
        for e in events:
            if e[0] == "data":
                len(e[3])
        best_floor = min(best_floor, time.process_time() - start)
        dispatcher = L7Dispatcher()
        records = 0
        start = time.process_time()
        for e in events:
            if e[0] == "data":
                records += len(dispatcher.on_segment(e[1], e[2], e[3], e[4], e[5]))
            else:
                dispatcher.on_close(e[1])
        best_parse = min(best_parse, time.process_time() - start)
    requests = dispatcher.stats.records[protocol] // 2
    rate = requests / best_parse
    return {"segments": len(data), "records": records, "requests": requests,
            "errors": sum(dispatcher.stats.parse_errors.values()),
            "floor_us": best_floor / len(data) * 1e6, "parse_us": best_parse / len(data) * 1e6,
            "rate": rate, "cores_per_10k": 10_000 / rate}


# --- in process: datapath events -> decoder -> L7 parser -> Observer, no kernel -----------------------------

HEY_REQUEST = (b"GET /ok HTTP/1.1\r\nHost: 10.244.1.3:8080\r\nUser-Agent: hey/0.0.1\r\nContent-Type: text/html\r\n"
               b"Accept-Encoding: gzip\r\n\r\n")
NGINX_RESPONSE = (b"HTTP/1.1 200 OK\r\nServer: nginx/1.22.1\r\nDate: Wed, 25 Nov 2026 19:00:00 GMT\r\n"
                  b"Content-Type: text/plain\r\nContent-Length: 3\r\nConnection: keep-alive\r\n\r\nok\n")


def payload_event(ts: int, src: str, dst: str, sport: int, dport: int, is_reply: bool, payload: bytes,
                  ifindex: int) -> bytes:
    """A datapath event (bpf/flowscope.h struct flow_event) carrying one whole segment's payload."""
    import ipaddress

    from collector.datapath import events as ev

    fields = dict(ts_ns=ts, first_seen_ns=0, packets_fwd=0, bytes_fwd=0, packets_rev=0, bytes_rev=0,
                  saddr=ipaddress.ip_address(src).packed.ljust(16, b"\0"),
                  daddr=ipaddress.ip_address(dst).packed.ljust(16, b"\0"), ifindex=ifindex, skb_len=0, policy_id=0,
                  remote_identity=0, sport=sport, dport=dport, payload_off=0, cap_len=len(payload), family=4,
                  proto=6, kind=ev.EV_NONE, obs=ev.OBS_FROM_POD, is_reply=int(is_reply), tcp_flags=0x18,
                  verdict=ev.VERDICT_FORWARDED, policy_action=0, policy_match=0, l7=ev.L7_PREFIX, flags_fwd=0,
                  flags_rev=0, seg_len=len(payload))
    return ev.EVENT.pack(*ev.FlowEvent(**fields)) + payload


def in_process(requests: int, repeat: int = 5) -> dict:
    """CPU µs per HTTP request (its request and response events) through Datapath._release: decoder, L7
    parser and Observer (ring, counters, one hook reading flow.l7 like the enforcer's PolicyAgent), as
    `hey` against nginx makes them on 40 keep-alive connections. Best of `repeat`."""
    from collector.datapath import DatapathConfig, Decoder, Enricher
    from collector.datapath.datapath import Datapath
    from common.endpoints import Endpoint, EndpointCache
    from collector.identity import IdentityAllocator
    from collector.l7 import FqdnCache, L7Dispatcher
    from collector.observer import Observer

    pods = [Endpoint(namespace="l7b", pod_name=name, ips=(ip,), labels={"app": name}, device=f"lxc{i}", ifindex=i)
            for i, (name, ip) in enumerate((("client", "10.244.1.2"), ("server", "10.244.1.3")), start=7)]
    events, ts = [], 10**12
    for i in range(requests + 1000):  # the first 1,000 fill the caches (heads, templates), untimed
        port = 40000 + i % 40
        events.append((ts, payload_event(ts, "10.244.1.2", "10.244.1.3", port, HTTP_PORT, False, HEY_REQUEST, 7)))
        events.append((ts + 50_000, payload_event(ts + 50_000, "10.244.1.3", "10.244.1.2", HTTP_PORT, port, True,
                                                  NGINX_RESPONSE, 8)))
        ts += 100_000
    best = float("inf")
    for _ in range(repeat):
        cache = EndpointCache("node-1")
        cache.replace(pods)
        names = FqdnCache()
        observer = Observer("node-1", 1 << 21)
        observer.hooks.append(lambda flow: flow.l7.HasField("dns"))
        decoder = Decoder(Enricher(cache, IdentityAllocator()), "node-1", l7=L7Dispatcher(fqdn=names), names=names)
        datapath = Datapath(DatapathConfig(), cache, decoder, observer.publish_many)
        datapath._pending = events[:2000]
        datapath._release(1 << 62)
        datapath._pending = events[2000:]
        start = time.process_time()
        datapath._release(1 << 62)
        best = min(best, time.process_time() - start)
        assert observer.status().seen_flows == 2 * (requests + 1000)
    return {"us": best / requests * 1e6, "cores_per_10k": best / requests * 10_000}


# --- end to end: lab pods, a collector process, a load generator -----------------------------------------

E2E_NGINX_CONF = """
worker_processes 1; daemon off; master_process off; error_log {d}/error.log; pid {d}/nginx.pid;
events {{ worker_connections 1024; }}
http {{
  access_log off; client_body_temp_path {d}; proxy_temp_path {d}; fastcgi_temp_path {d};
  uwsgi_temp_path {d}; scgi_temp_path {d}; keepalive_requests 1000000;
  ssl_certificate {d}/cert.pem; ssl_certificate_key {d}/key.pem;
  server {{
    listen {port} backlog=4096;
    listen {https_port} ssl backlog=4096;
    location /ok {{ return 200 "ok\\n"; }}
    location /fail {{ return 500; }}
    location / {{ return 404; }}
  }}
}}
"""
GRPC_SERVER = """
from concurrent import futures
import grpc
from lab.apps.grpc_demo import say
server = grpc.server(futures.ThreadPoolExecutor(max_workers=8))
server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(
    "demo.Echo", {"Say": grpc.unary_unary_rpc_method_handler(say)}),))
server.add_insecure_port("0.0.0.0:%d")
server.start()
server.wait_for_termination()
"""
GRPC_LOAD = """
import sys, threading, time
import grpc
target, seconds, channels = sys.argv[1], float(sys.argv[2]), int(sys.argv[3])
counts = []
def work():
    n = 0
    with grpc.insecure_channel(target) as channel:  # one channel = one HTTP/2 connection
        grpc.channel_ready_future(channel).result(timeout=10)
        call = channel.unary_unary("/demo.Echo/Say")
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            try:
                call(b"fail" if n % 10 == 9 else b"hello", timeout=10)
            except grpc.RpcError:
                pass
            n += 1
    counts.append(n)
threads = [threading.Thread(target=work) for _ in range(channels)]
[t.start() for t in threads]
[t.join() for t in threads]
print("TOTAL", sum(counts))
"""
WARMUP_PATH = "/warmup"
DRAIN_S = 3.0  # after the load: the reader catches up before CPU and flows are read


@dataclass
class E2ERun:
    load: str
    client_requests: int
    seconds: float
    request_flows: int
    response_flows: int
    events: int  # datapath events read over the collector's life (the warmup's few included)
    lost: int
    cpu_s: float  # collector process CPU over the load + drain window
    load_avg: float
    reader_cpu_s: float  # the busiest thread (the perf buffer reader) on a CPU ...
    reader_wait_s: float  # ... and runnable but waiting for one (the machine's other jobs had it)
    idle_cores: float = 0.0  # the same collector's CPU with no traffic (its fixed cost), for the marginal column

    @property
    def rate(self) -> float:
        return self.client_requests / self.seconds

    @property
    def observed(self) -> float:
        return 100.0 * self.request_flows / self.client_requests if self.client_requests else 0.0

    @property
    def window(self) -> float:
        return self.seconds + DRAIN_S

    @property
    def cores(self) -> float:
        return self.cpu_s / self.window

    def per_10k(self, cpu_s: float) -> str:
        """CPU seconds per request x 10,000: the cores a steady 10,000 requests/s would take."""
        return f"{cpu_s / self.client_requests * 10_000:.2f}" if self.client_requests else "-"


def e2e_topology(workdir: Path) -> dict:
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=server",
                    "-keyout", str(workdir / "key.pem"), "-out", str(workdir / "cert.pem")],
                   check=True, capture_output=True)
    (workdir / "nginx.conf").write_text(E2E_NGINX_CONF.format(d=workdir, port=HTTP_PORT, https_port=HTTPS_PORT))
    (workdir / "grpc_server.py").write_text(GRPC_SERVER % GRPC_PORT)
    (workdir / "grpc_load.py").write_text(GRPC_LOAD)
    # gRPC needs no L7 port: the datapath recognises the HTTP/2 preface and captures the connection whole
    return {"name": "l7b" + secrets.token_hex(2),
            "pods": [{"name": "client", "labels": {"app": "client"}},
                     {"name": "server", "labels": {"app": "server"},
                      "commands": [f"exec nginx -c {workdir}/nginx.conf -p {workdir}",
                                   f"exec {sys.executable} {workdir}/grpc_server.py"]}]}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def process_cpu_s(pid: int) -> float:
    """utime + stime of every thread of the process (fields 14 and 15 of /proc/<pid>/stat)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def thread_schedstats(pid: int) -> dict[int, tuple[float, float]]:
    """Per thread: (seconds on a CPU, seconds runnable but waiting for a CPU) from /proc/.../schedstat."""
    stats = {}
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{tid}/schedstat") as f:
                run_ns, wait_ns = f.read().split()[:2]
        except OSError:
            continue
        stats[int(tid)] = (int(run_ns) / 1e9, int(wait_ns) / 1e9)
    return stats


def busiest_thread(before: dict, after: dict) -> tuple[float, float]:
    """(CPU seconds, runqueue-wait seconds) of the thread that used most CPU in between: the perf reader."""
    deltas = [(after[t][0] - before.get(t, (0, 0))[0], after[t][1] - before.get(t, (0, 0))[1]) for t in after]
    return max(deltas, default=(0.0, 0.0))


class CollectorProcess:
    """`flowscope collector` on the lab's node, its own pin dir and port, no unix socket."""

    def __init__(self, state: lab.LabState, workdir: Path, tls: bool = False) -> None:
        self.port = free_port()
        self.pin_dir = f"/sys/fs/bpf/fsl7b-{secrets.token_hex(3)}"
        self.log = workdir / f"collector-{self.port}.log"
        with open(self.log, "wb") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "flowscope", "collector", "--node-name", state.pods[0].node,
                 "--lab-state", state.path, "--listen-address", f"127.0.0.1:{self.port}", "--unix-socket", "",
                 "--pin-dir", self.pin_dir, "--ring-capacity", str(1 << 21), "--l7-ports", str(HTTP_PORT),
                 "--l7-tls", "on" if tls else "off"],
                stdout=log, stderr=subprocess.STDOUT, cwd=Path(__file__).resolve().parents[1])

    def observe_l7(self) -> list[dict]:
        out = subprocess.run([sys.executable, "-m", "flowscope", "observe", "--server", f"127.0.0.1:{self.port}",
                              "--all", "--type", "l7", "-o", "jsonpb", "--timeout", "60"],
                             capture_output=True, text=True, timeout=300,
                             cwd=Path(__file__).resolve().parents[1])
        if out.returncode != 0:
            raise RuntimeError(f"flowscope observe failed: {out.stderr.strip()}")
        return [json.loads(line)["flow"] for line in out.stdout.splitlines() if '"flow"' in line]

    def stop(self) -> tuple[int, int]:
        """Stop it; the (events read, events lost) it reports on exit."""
        try:
            if self.proc.poll() is None:
                self.proc.send_signal(signal.SIGTERM)
                try:
                    self.proc.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    self.proc.kill()
                    self.proc.wait()
        finally:
            shutil.rmtree(self.pin_dir, ignore_errors=True)
        found = re.findall(r"(\d+) events, \d+ flows, (\d+) lost", self.log.read_text(errors="replace"))
        return tuple(map(int, found[-1])) if found else (-1, -1)


def http_flows(flows: list[dict], url_part: str) -> tuple[int, int]:
    """(request, response) HTTP L7 flows whose url has `url_part` (the warmup request's has not)."""
    requests = responses = 0
    for f in flows:
        l7 = f.get("l7", {})
        url = l7.get("http", {}).get("url", "")
        if url_part not in url or WARMUP_PATH in url:
            continue
        if l7.get("type") == "REQUEST":
            requests += 1
        elif l7.get("type") == "RESPONSE":
            responses += 1
    return requests, responses


def wait_attached(collector: CollectorProcess, state: lab.LabState, client, server, timeout: float = 180) -> None:
    """Until a curl from the client pod shows up as an HTTP flow: the programs are attached and read."""

    def warmup_seen() -> bool:
        if collector.proc.poll() is not None:
            raise RuntimeError(f"collector exited: {collector.log.read_text()[-2000:]}")
        subprocess.run(["ip", "netns", "exec", client.netns, "curl", "-s", "-o", "/dev/null",
                        f"http://{server.ipv4}:{HTTP_PORT}{WARMUP_PATH}"], timeout=10)
        try:
            return any(WARMUP_PATH in f.get("l7", {}).get("http", {}).get("url", "") for f in collector.observe_l7())
        except RuntimeError:
            return False  # the gRPC server is not up yet

    try:
        wait_for(warmup_seen, timeout, "the warm-up curl seen as an HTTP flow", interval=1)
    except AssertionError:
        raise RuntimeError(f"collector not attached after {timeout:.0f}s: "
                           f"{collector.log.read_text()[-2000:]}") from None


def hey_command(url: str, seconds: int, rate: int, connections: int) -> list[str]:
    return ["hey", "-z", f"{seconds}s", "-c", str(connections), "-q", str(max(rate // connections, 1)), url]


def hey_count(out: str) -> int:
    return sum(int(n) for n in re.findall(r"\[\d+\]\s+(\d+) responses", out))


def wrk_command(url: str, seconds: int, connections: int, script: Path) -> list[str]:
    return ["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "-s", str(script), url]


def e2e_run(state: lab.LabState, workdir: Path, load: str, command: list[str], seconds: int,
            idle_cores: float = 0.0, url_part: str = f":{HTTP_PORT}/", tls: bool = False) -> E2ERun:
    client, server = (next(h for h in state.pods if h.name.startswith(n)) for n in ("client", "server"))
    collector = CollectorProcess(state, workdir, tls)
    try:
        wait_attached(collector, state, client, server)
        time.sleep(1)
        cpu0, sched0 = process_cpu_s(collector.proc.pid), thread_schedstats(collector.proc.pid)
        out = subprocess.run(["ip", "netns", "exec", client.netns, *command], capture_output=True, text=True,
                             timeout=seconds + 60, check=True).stdout
        time.sleep(DRAIN_S)
        cpu = process_cpu_s(collector.proc.pid) - cpu0
        reader_cpu, reader_wait = busiest_thread(sched0, thread_schedstats(collector.proc.pid))
        load_avg = os.getloadavg()[0]
        requests, responses = http_flows(collector.observe_l7(), url_part)
    finally:
        events, lost = collector.stop()
    count = {"wrk": lambda: int(re.search(r"WRK (\d+)", out).group(1)), "hey": lambda: hey_count(out),
             sys.executable: lambda: int(re.search(r"TOTAL (\d+)", out).group(1)),
             "sleep": lambda: 0}[command[0]]()
    return E2ERun(load, count, seconds, requests, responses, events, lost, cpu, load_avg, reader_cpu, reader_wait,
                  idle_cores)


def e2e_lab() -> tuple[lab.LabState, Path]:
    for tool in ("hey", "wrk", "nginx", "curl", "openssl"):
        if not shutil.which(tool):
            raise SystemExit(f"bench/l7.py: {tool} not found (Debian package {tool}): install it first")
    workdir = Path(tempfile.mkdtemp(prefix="fsl7b-"))
    os.chmod(workdir, 0o755)
    (workdir / "mix.lua").write_text(WRK_MIX)
    return lab.up(lab.parse_topology(e2e_topology(workdir), source="<bench/l7.py>")), workdir


def tls_side_by_side(seconds: int, rates: list[int], wrk_connections: list[int]) -> list[E2ERun]:
    """Plaintext then TLS at each load, a fresh collector per run."""
    state, workdir = e2e_lab()
    runs = []
    try:
        server = next(h for h in state.pods if h.name.startswith("server"))
        runs.append(e2e_run(state, workdir, "idle, --l7-tls on (no load)", ["sleep", str(seconds)], seconds, tls=True))
        print_e2e(runs, header=True)
        idle = runs[0].cores
        for rate in rates:
            connections = max(2, rate // 250)
            for tls in (False, True):
                base = f"https://{server.ipv4}:{HTTPS_PORT}" if tls else f"http://{server.ipv4}:{HTTP_PORT}"
                runs.append(e2e_run(state, workdir, f"{'TLS' if tls else 'plaintext'}: hey -c{connections} "
                                    f"-q{rate // connections} (/ok)", hey_command(f"{base}/ok", seconds, rate, connections),
                                    seconds, idle, url_part=f":{HTTPS_PORT if tls else HTTP_PORT}/", tls=tls))
                print_e2e(runs[-1:], header=False)
        # wrk links OpenSSL: with the capture off its rate is the TLS baseline, so the uprobes' cost to
        # the probed processes shows as the rate lost with the capture on
        for connections in wrk_connections:
            for name, tls, capture in (("plaintext", False, False), ("TLS, --l7-tls off", True, False),
                                       ("TLS", True, True)):
                base = f"https://{server.ipv4}:{HTTPS_PORT}" if tls else f"http://{server.ipv4}:{HTTP_PORT}"
                runs.append(e2e_run(state, workdir, f"{name}: wrk -t1 -c{connections} (200/404/500 mix)",
                                    wrk_command(f"{base}/", seconds, connections, workdir / "mix.lua"),
                                    seconds, idle, url_part=f":{HTTPS_PORT if tls else HTTP_PORT}/", tls=capture))
                print_e2e(runs[-1:], header=False)
    finally:
        lab.down(state.path)
        shutil.rmtree(workdir, ignore_errors=True)
    return runs


def end_to_end(seconds: int, rates: list[int], wrk_connections: list[int],
               grpc_channels: list[int], grpc_seconds: int) -> list[E2ERun]:
    state, workdir = e2e_lab()
    runs = []
    try:
        server = next(h for h in state.pods if h.name.startswith("server"))
        base = f"http://{server.ipv4}:{HTTP_PORT}"
        # the collector's fixed cost (endpoint sync, connection-table GC) with no traffic
        runs.append(e2e_run(state, workdir, "idle (no load)", ["sleep", str(seconds)], seconds))
        print_e2e(runs, header=True)
        idle = runs[0].cores
        for rate in rates:
            connections = max(2, rate // 250)  # a hey worker keeps ~250 requests/s here, not much more
            runs.append(e2e_run(state, workdir, f"hey -c{connections} -q{rate // connections} (/ok)",
                                hey_command(f"{base}/ok", seconds, rate, connections), seconds, idle))
            print_e2e(runs[-1:], header=False)
        for connections in wrk_connections:
            runs.append(e2e_run(state, workdir, f"wrk -t1 -c{connections} (200/404/500 mix)",
                                wrk_command(f"{base}/", seconds, connections, workdir / "mix.lua"), seconds, idle))
            print_e2e(runs[-1:], header=False)
        for channels in grpc_channels:
            runs.append(e2e_run(state, workdir, f"gRPC unary, grpcio, {channels} channel(s) (10% NOT_FOUND)",
                                [sys.executable, str(workdir / "grpc_load.py"), f"{server.ipv4}:{GRPC_PORT}",
                                 str(grpc_seconds), str(channels)], grpc_seconds, idle, url_part="/demo.Echo/Say"))
            print_e2e(runs[-1:], header=False)
    finally:
        lab.down(state.path)
        shutil.rmtree(workdir, ignore_errors=True)
    return runs


def print_e2e(runs: list[E2ERun], header: bool = True) -> None:
    if header:
        print(" | ".join(("load", "client requests", "client req/s", "request flows", "response flows",
                          "% observed", "events read", "lost events", "collector cores (load + drain)", "cores per 10k req/s",
                          "same minus idle", "reader thread cores", "reader waiting for CPU", "load avg")))
    for r in runs:
        print(" | ".join((r.load, f"{r.client_requests:,}", f"{r.rate:,.0f}", f"{r.request_flows:,}",
                          f"{r.response_flows:,}", f"{r.observed:.1f}", f"{r.events:,}", f"{r.lost:,}", f"{r.cores:.2f}",
                          r.per_10k(r.cpu_s), r.per_10k(r.cpu_s - r.idle_cores * r.window),
                          f"{r.reader_cpu_s / r.window:.2f}", f"{100 * r.reader_wait_s / r.window:.0f}%",
                          f"{r.load_avg:.1f}")), flush=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=2, help="wrk run length")
    parser.add_argument("--calls", type=int, default=3000, help="gRPC unary calls")
    parser.add_argument("--e2e-only", action="store_true", help="only the end-to-end part")
    parser.add_argument("--e2e-seconds", type=int, default=5, help="load duration per end-to-end run")
    parser.add_argument("--rates", default="2000,5000,10000", help="hey request rates (requests/s)")
    parser.add_argument("--wrk-connections", default="8", help="wrk runs at natural maximum, connections each")
    parser.add_argument("--grpc-channels", default="1,4", help="gRPC runs at natural maximum, client channels each")
    # the datapath captures the first L7_BUDGET (1 MiB) of an HTTP/2 connection, ~8,000 unary calls, and
    # grpcio channels to one target share one connection: longer runs measure the budget, not the parser
    parser.add_argument("--grpc-seconds", type=int, default=2, help="load duration per gRPC run")
    parser.add_argument("--in-process", type=int, metavar="REQUESTS", default=0,
                        help="only decode and publish this many synthetic HTTP requests in process (no kernel)")
    parser.add_argument("--tls", action="store_true",
                        help="only TLS vs plaintext, end to end (hey at --rates, wrk at --wrk-connections)")
    args = parser.parse_args()
    if args.tls:
        print("TLS vs plaintext, end to end (collector process, lab pods):")
        runs = tls_side_by_side(args.e2e_seconds, [int(r) for r in args.rates.split(",") if r],
                                [int(c) for c in args.wrk_connections.split(",") if c])
        print("\nall runs:")
        print_e2e(runs)
        return 0
    if args.in_process:
        result = in_process(args.in_process)
        print("in process (decoder + HTTP/1 parser + Observer with one hook) | µs per request | cores per 10k req/s")
        print(f"hey -> nginx GET /ok, 40 connections | {result['us']:.2f} | {result['cores_per_10k']:.3f}")
        return 0
    print("end to end (collector process, lab pods):")
    e2e = end_to_end(args.e2e_seconds, [int(r) for r in args.rates.split(",") if r],
                     [int(c) for c in args.wrk_connections.split(",") if c],
                     [int(c) for c in args.grpc_channels.split(",") if c], args.grpc_seconds)
    print("\nall end-to-end runs:")
    print_e2e(e2e)
    if args.e2e_only:
        return 0
    rows = []
    with tempfile.TemporaryDirectory(prefix="l7bench") as tmp:
        tmp_path = Path(tmp)
        pcap, client_count, dropped = capture_http(tmp_path, args.seconds)
        rows.append(("HTTP/1.1 (wrk -> nginx)", client_count, dropped, measure(pcap, HTTP_PORT, "http")))
        pcap, client_count, dropped = capture_grpc(tmp_path, args.calls)
        rows.append(("gRPC unary (grpcio)", client_count, dropped, measure(pcap, GRPC_PORT, "http2")))
    head = ("workload", "client count", "pcap drops", "segments", "requests parsed", "parse errors",
            "loop only us/seg", "parser us/seg", "requests/s per core", "cores per 10k req/s")
    print(" | ".join(head))
    for name, client_count, dropped, m in rows:
        print(" | ".join([name, str(client_count), str(dropped), str(m["segments"]), str(m["requests"]),
                          str(m["errors"]), f"{m['floor_us']:.2f}", f"{m['parse_us']:.2f}", f"{m['rate']:,.0f}",
                          f"{m['cores_per_10k']:.3f}"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
