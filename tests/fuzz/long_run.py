"""The long fuzz run, by hand: every harness in turn for --runs inputs (libFuzzer -timeout=1: an input
running past a second is replayed alone and counted a hang if it is still slow, else a stall of the
shared machine and fuzzing goes on), then a table for docs/fuzzing.md.

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
_ARTIFACT_PATH = re.compile(r"Test unit written to (\S*/(crash|timeout|oom|slow-unit)-\S+)")
_EXECUTED = re.compile(r"Executed \S+ in (\d+) ms")


def _libfuzzer(target: str, flags: list[str], paths: list[str]) -> str:
    cmd = [sys.executable, "-m", f"tests.fuzz.fuzz_{target}", *flags, *paths]
    return subprocess.run(cmd, capture_output=True, text=True).stderr


def replay_ms(target: str, path: str, times: int = 3) -> float:
    """The slowest of `times` runs of one input, alone (a timeout on a loaded machine may be a stall)."""
    log = _libfuzzer(target, [f"-runs={times}"], [path] * times)
    return max((float(ms) for ms in _EXECUTED.findall(log)), default=float("inf"))


def fuzz(target: str, runs: int, corpus: str, max_total_time: int) -> dict:
    """Fuzz until `runs` inputs or `max_total_time`. An input past -timeout=1 stops libFuzzer: it is
    replayed alone, and a hang only if it is still slow; otherwise (a scheduling stall on a shared
    machine) fuzzing resumes on the same corpus. A crash stops the target."""
    os.makedirs(corpus, exist_ok=True)
    started = time.monotonic()
    done, stalls, hangs, crashes, cov, ft, corp, tail = 0, [], 0, 0, 0, 0, 0, ""
    while done < runs and time.monotonic() - started < max_total_time:
        left = int(max_total_time - (time.monotonic() - started)) + 1
        log = _libfuzzer(target, [f"-runs={runs - done}", "-timeout=1", "-max_len=4096",
                                  f"-max_total_time={left}", f"-artifact_prefix={corpus}/"], [corpus])
        stats = _DONE.findall(log) or _STAT.findall(log)
        if stats:
            n, cov, ft, corp = (int(x) for x in stats[-1])
            done += n
        artifacts = _ARTIFACT_PATH.findall(log)
        crashes += sum(kind in ("crash", "oom") for _, kind in artifacts)
        for path, kind in artifacts:
            if kind == "timeout":
                ms = replay_ms(target, path)
                if ms >= 1000:
                    hangs += 1
                else:
                    stalls.append(ms)
                    os.unlink(path)
        if crashes or hangs or not artifacts:
            tail = "\n".join(log.splitlines()[-30:]) if crashes or hangs else ""
            break
    seconds = time.monotonic() - started
    return {"target": target, "inputs": done, "seconds": round(seconds), "exec/s": round(done / seconds),
            "crashes": crashes, "hangs": hangs, "stalls": len(stalls),
            "stall_replay_ms": max(stalls, default=0.0), "cov": cov, "ft": ft, "corpus": corp,
            "rc": 1 if crashes or hangs else 0, "tail": tail}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=1_000_000)
    parser.add_argument("--only", default=",".join(TARGETS))
    parser.add_argument("--corpus", default="/tmp/flowscope-fuzz-corpus")
    parser.add_argument("--max-total-time", type=int, default=3600, help="seconds per target at most")
    args = parser.parse_args()
    print("| target | inputs | seconds | exec/s | crashes | hangs > 1 s | stalls (replayed, slowest ms) "
          "| cov (edges) | features | corpus |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    failed = 0
    for target in args.only.split(","):
        r = fuzz(target, args.runs, os.path.join(args.corpus, target), args.max_total_time)
        print(f"| {target} | {r['inputs']:,} | {r['seconds']} | {r['exec/s']:,} | {r['crashes']} | {r['hangs']} "
              f"| {r['stalls']} ({r['stall_replay_ms']:g}) | {r['cov']} | {r['ft']} | {r['corpus']} |", flush=True)
        if r["rc"]:
            failed += 1
            print(r["tail"], file=sys.stderr, flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
