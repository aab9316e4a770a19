"""L7 parser throughput, by hand: `sudo .venv/bin/python bench/l7.py [--seconds 2] [--calls 3000]`.

Real traffic first (as in tests/collector/l7): wrk against nginx (HTTP/1.1 keep-alive, 200/404/500 mix)
and a grpcio client making unary calls against a grpcio server, each in a private network namespace
while tcpdump captures it. Then the captured segments, cut to 512-byte prefixes like the datapath
sends, are loaded into memory and fed to collector.l7.L7Dispatcher on one core, timed by CPU time.
Side by side: the client's own count, the raw segment count, a loop over the same segments that does
nothing (the floor of any per-segment Python work), and the parser.

This measures the parsers alone. The end-to-end part (datapath perf buffer -> dispatcher, requests/s
observed without loss) is added when the datapath delivers payload prefixes (bench/datapath.py owner).
"""

from __future__ import annotations

import argparse
import re
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from collector.l7 import L7Dispatcher  # noqa: E402
from tests.collector.l7.capture import background, netns, run, segments, tcpdump, wait_port  # noqa: E402
from tests.collector.l7.test_http1_capture import nginx_conf  # noqa: E402

HTTP_PORT, GRPC_PORT = 8080, 50051
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
    program = "tests/collector/l7/programs/grpc_demo.py"
    with netns() as ns, background(ns, [sys.executable, program, "server", str(GRPC_PORT)], ready="READY"):
        with tcpdump(ns, pcap, f"tcp port {GRPC_PORT}", snaplen=700, strict=False) as info:
            out = run(ns, [sys.executable, program, "load", str(GRPC_PORT), str(calls)], timeout=300).stdout
    return pcap, int(re.search(r"TOTAL (\d+)", out).group(1)), info["dropped"]


def measure(pcap: Path, port: int, protocol: str, repeat: int = 3) -> dict:
    events = list(segments(pcap, {port}))
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


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=2, help="wrk run length")
    parser.add_argument("--calls", type=int, default=3000, help="gRPC unary calls")
    args = parser.parse_args()
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
