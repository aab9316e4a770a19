"""The pin dir's owner lock: held while a collector runs, gone however it ends (SIGKILL included)."""

import subprocess
import sys

from collector.datapath.owner import LOCK_DIR_ENV, PinDirOwner, collector_running

HOLDER = ("import sys, time; from collector.datapath.owner import PinDirOwner; PinDirOwner(sys.argv[1]).hold(); "
          "print('held', flush=True); time.sleep(60)")


def test_held_while_running_and_shared(tmp_path, monkeypatch):
    monkeypatch.setenv(LOCK_DIR_ENV, str(tmp_path))
    assert not collector_running("/sys/fs/bpf/x"), "never started"
    first, second = PinDirOwner("/sys/fs/bpf/x"), PinDirOwner("/sys/fs/bpf/x")
    first.hold()
    second.hold()   # shared: an overlapping rollout runs two collectors on one pin dir
    assert collector_running("/sys/fs/bpf/x") and not collector_running("/sys/fs/bpf/y")
    first.release()
    assert collector_running("/sys/fs/bpf/x")
    second.release()
    assert not collector_running("/sys/fs/bpf/x")


def test_a_killed_collector_holds_nothing(tmp_path, monkeypatch):
    monkeypatch.setenv(LOCK_DIR_ENV, str(tmp_path))
    proc = subprocess.Popen([sys.executable, "-c", HOLDER, "/sys/fs/bpf/z"], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "held"
        assert collector_running("/sys/fs/bpf/z")
    finally:
        proc.kill()
        proc.wait()
    assert not collector_running("/sys/fs/bpf/z")
