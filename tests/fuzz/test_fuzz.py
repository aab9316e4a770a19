"""A short coverage-guided run of every harness in tests/fuzz (a few thousand inputs each, seeded
corpus, fixed seed): any input that makes a target raise anything but its typed error fails the test
with libFuzzer's report. The long runs are by hand (tests/fuzz/long_run.py; results in docs/fuzzing.md)."""

import subprocess
import sys

import pytest

from tests.fuzz.long_run import TARGETS

RUNS = 3000


@pytest.mark.parametrize("target", TARGETS)
def test_short_fuzz_run_finds_no_crash(target, tmp_path):
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    # -timeout is generous here (a loaded CI machine); the long runs hold inputs to 1 s.
    proc = subprocess.run([sys.executable, "-m", f"tests.fuzz.fuzz_{target}", f"-runs={RUNS}", "-seed=1",
                           "-timeout=20", "-max_len=4096", f"-artifact_prefix={tmp_path}/", str(corpus)],
                          capture_output=True, text=True, timeout=600)
    report = "\n".join(proc.stderr.splitlines()[-40:])
    assert proc.returncode == 0, f"fuzz_{target} crashed:\n{report}"
    assert f"Done {RUNS} runs" in proc.stderr, report
