"""The long fuzz run, by hand: every harness in turn for --runs inputs (libFuzzer -timeout=1: an input
running past a second is a hang and stops that target), then a table for docs/fuzzing.md.

    .venv/bin/python -m tests.fuzz.long_run --runs 1000000 [--only http1,dns] [--corpus /tmp/corpus]
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import time

TARGETS = ("http1", "http2", "dns", "kafka", "flowbatch", "getflows", "json_api", "policy")
_DONE = re.compile(r"#(\d+)\s+DONE\s+cov: (\d+) ft: (\d+) corp: (\d+)/")
_STAT = re.compile(r"#(\d+)\s+\w+\s+cov: (\d+) ft: (\d+) corp: (\d+)/")
_ARTIFACT = re.compile(r"Test unit written to \S*/(crash|timeout|oom|slow-unit)-")


def fuzz(target: str, runs: int, corpus: str, max_total_time: int) -> dict:
    os.makedirs(corpus, exist_ok=True)
    cmd = [sys.executable, "-m", f"tests.fuzz.fuzz_{target}", f"-runs={runs}", "-timeout=1", "-max_len=4096",
           f"-max_total_time={max_total_time}", "-print_final_stats=1", f"-artifact_prefix={corpus}/", corpus]
    started = time.monotonic()
    proc = subprocess.run(cmd, capture_output=True, text=True)
    seconds = time.monotonic() - started
    log = proc.stderr
    stats = _DONE.findall(log) or _STAT.findall(log)
    inputs, cov, ft, corp = (int(x) for x in stats[-1]) if stats else (0, 0, 0, 0)
    return {"target": target, "inputs": inputs, "seconds": round(seconds), "exec/s": round(inputs / seconds),
            "crashes": sum(kind in ("crash", "oom") for kind in _ARTIFACT.findall(log)),
            "hangs": _ARTIFACT.findall(log).count("timeout"), "cov": cov, "ft": ft, "corpus": corp,
            "rc": proc.returncode,
            "tail": "\n".join(log.splitlines()[-30:]) if proc.returncode else ""}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=1_000_000)
    parser.add_argument("--only", default=",".join(TARGETS))
    parser.add_argument("--corpus", default="/tmp/flowscope-fuzz-corpus")
    parser.add_argument("--max-total-time", type=int, default=3600, help="seconds per target at most")
    args = parser.parse_args()
    print("| target | inputs | seconds | exec/s | crashes | hangs > 1 s | cov (edges) | features | corpus |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    failed = 0
    for target in args.only.split(","):
        r = fuzz(target, args.runs, os.path.join(args.corpus, target), args.max_total_time)
        print(f"| {target} | {r['inputs']:,} | {r['seconds']} | {r['exec/s']:,} | {r['crashes']} | {r['hangs']} "
              f"| {r['cov']} | {r['ft']} | {r['corpus']} |", flush=True)
        if r["rc"]:
            failed += 1
            print(r["tail"], file=sys.stderr, flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
