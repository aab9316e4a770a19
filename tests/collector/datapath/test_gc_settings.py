"""The collector process's garbage-collector settings (collector.agent.settle_gc): what it had built when it
started is frozen out of later collections, and GC_THRESHOLDS hold. Why, and what it changed: the
"Collector event path" subsections of docs/benchmarks.md."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys

import pytest

from collector.agent import GC_THRESHOLDS
from lab.testbed.wait import wait_for
from tests.collector.datapath.helpers import TOPOLOGY
from tests.collector.datapath.test_robustness import collector_cmd
from tests.fixtures.datapath import unique_pin_dir

# In a process of its own: the settings are the whole interpreter's, not this test's to change.
SETTLE = """
import gc, json
import collector.agent
before = len(gc.get_objects())
frozen, thresholds = collector.agent.settle_gc()
print(json.dumps({"before": before, "after": len(gc.get_objects()), "frozen": frozen, "thresholds": thresholds,
                  "really": gc.get_threshold(), "freeze_count": gc.get_freeze_count()}))
"""


def test_settle_gc_freezes_what_exists_and_sets_the_thresholds():
    done = subprocess.run([sys.executable, "-c", SETTLE], capture_output=True, text=True, check=True, timeout=60)
    r = json.loads(done.stdout)
    assert r["thresholds"] == r["really"] == list(GC_THRESHOLDS)
    assert r["frozen"] == r["freeze_count"] >= r["before"] * 0.9  # the imports' objects: tens of thousands
    assert r["after"] < r["before"] / 20, "a full collection still walks what was frozen"


@pytest.mark.root
def test_flowscope_collector_settles_gc_once_started(lab_factory, tmp_path):
    lab = lab_factory(TOPOLOGY)
    log = tmp_path / "collector.log"
    with open(log, "w") as err:
        proc = subprocess.Popen(collector_cmd(unique_pin_dir(), lab), stderr=err, text=True)
    try:
        line = wait_for(lambda: proc.poll() is None and re.search(r"garbage collection: (\d+) objects frozen, "
                                                                   r"thresholds (\S+)", log.read_text()),
                        timeout=60, what="the collector's garbage-collection line")
        # After the imports (~53,000 objects alone), the compiled datapath and the servers: ~64,000.
        assert int(line.group(1)) > 55_000
        assert line.group(2) == "/".join(map(str, GC_THRESHOLDS))
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
    assert proc.returncode == 0, log.read_text()
