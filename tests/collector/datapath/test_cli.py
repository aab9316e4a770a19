"""`flowscope collector` flags that need no kernel: the hidden --dump-bpf and bad values."""

from __future__ import annotations

import subprocess
import sys


def collector(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "flowscope", "collector", *args], capture_output=True, text=True,
                          timeout=60)


def test_dump_bpf_shows_the_program_as_compiled():
    result = collector("--dump-bpf", "--aggregation", "none", "--payload-bytes", "256", "--pin-dir", "/sys/fs/bpf/x")
    assert result.returncode == 0, result.stderr
    assert "-DAGGREGATION=0" in result.stdout and "-DPAYLOAD_BYTES=256" in result.stdout
    assert '-DFLOWSCOPE_PIN_DIR="/sys/fs/bpf/x"' in result.stdout
    assert "int from_pod(struct __sk_buff *skb)" in result.stdout and "struct flow_event {" in result.stdout


def test_bad_values_are_one_line_errors():
    result = collector("--payload-bytes", "0", "--dump-bpf")
    assert result.returncode == 1
    assert result.stderr.strip() == "flowscope collector: error: payload bytes 0: expected 1..16384"
    result = collector("--l7-ports", "80,http")
    assert result.returncode == 2 and "expected comma-separated port numbers" in result.stderr
