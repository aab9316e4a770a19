"""Client patterns benchmark, run by hand: `.venv/bin/python bench/patterns.py [--flows 2000]`.

Side by side in one run, per flow through a whole FlowFilter predicate (common.filters.build_filter):
  - today's matcher (common.patterns, RE2) for ordinary and for hostile patterns (issue #16);
  - Python's backtracking `re` on the same regexes, as the filters used before, with a per-pattern time
    cap: a hostile pattern is measured on one flow only, in a child process killed after --cap seconds.
Results go to docs/benchmarks.md (Client patterns) by hand.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import re
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from common.filters import build_filter  # noqa: E402
from common.filters.fqdn import fqdn_regex  # noqa: E402
from proto.flow import flow_pb2  # noqa: E402

URL = "http://frontend.default.svc:8080/" + "a" * 200  # no "!": the hostile regex must fail
NAME = "a" * 60 + ".example.org"

# (label, FlowFilter fields, the text the regex runs on, the regex Python's re would run)
CASES = [
    ("http_url ^/api/ (ordinary)", dict(http_url=["^http://[^/]+/api/"]), URL, "^http://[^/]+/api/"),
    ("destination_fqdn *.example.org (ordinary)", dict(destination_fqdn=["*.example.org"]), NAME,
     fqdn_regex("destination_fqdn", "*.example.org")),
    ("http_url (.|.|.)*! (hostile)", dict(http_url=["(.|.|.)*!"]), URL, "(.|.|.)*!"),
    ("destination_fqdn **********z (hostile)", dict(destination_fqdn=["**********z"]), NAME,
     "".join("[-a-z0-9_.]*" if c == "*" else re.escape(c) for c in "**********z")),
]


def _flow() -> flow_pb2.Flow:
    flow = flow_pb2.Flow(destination_names=[NAME], Type=flow_pb2.L7)
    flow.l7.http.url = URL
    return flow


def per_flow_re2(fields: dict, flows: int) -> float:
    match, flow = build_filter(flow_pb2.FlowFilter(**fields)), _flow()
    start = time.perf_counter()
    for _ in range(flows):
        match(flow)
    return (time.perf_counter() - start) / flows


def _python_re(regex: str, text: str, full: bool, repeat: int, out) -> None:
    pattern = re.compile(regex)
    run = pattern.fullmatch if full else pattern.search
    start = time.perf_counter()
    for _ in range(repeat):
        run(text)
    out.put((time.perf_counter() - start) / repeat)


def per_flow_python_re(regex: str, text: str, full: bool, repeat: int, cap: float) -> float | None:
    """Seconds per match with `re`, or None when one match did not end within `cap` seconds."""
    out: multiprocessing.Queue = multiprocessing.Queue()
    child = multiprocessing.Process(target=_python_re, args=(regex, text, full, repeat, out))
    child.start()
    child.join(cap)
    if child.is_alive():
        child.kill()
        child.join()
        return None
    return out.get()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--flows", type=int, default=2000)
    parser.add_argument("--cap", type=float, default=60.0, help="seconds one `re` match may take")
    args = parser.parse_args()
    print(f"{'pattern':44} {'RE2 per flow':>14} {'Python re per flow':>20}")
    for label, fields, text, regex in CASES:
        re2_s = per_flow_re2(fields, args.flows)
        hostile = "hostile" in label
        python_s = per_flow_python_re(regex, text, "fqdn" in label, 1 if hostile else args.flows, args.cap)
        python = f"> {args.cap:.0f} s" if python_s is None else f"{python_s * 1e6:,.1f} µs"
        print(f"{label:44} {re2_s * 1e6:>11.1f} µs {python:>20}")


if __name__ == "__main__":
    main()
