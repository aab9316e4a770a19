"""Finding the TLS a pod process uses: libssl files to probe, and TLS linked into a file (not visible)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import pytest

from collector.tls import procs
from lab.testbed.wait import wait_for


def test_tls_linked_into_a_file_is_named(tmp_path):
    scanner = procs.StaticScanner()
    for name, marker, expected in (("go", b"crypto/tls.(*Conn).Write", "Go crypto/tls"),
                                   ("boring", b"BoringSSL", "BoringSSL"),
                                   ("static", b"ssl/statem/statem_clnt.c", "OpenSSL"), ("plain", b"hello", "")):
        path = tmp_path / name
        path.write_bytes(b"\x7fELF" + b"\0" * 4096 + marker + b"\0" * 16)
        assert scanner.implementation((0, hash(name)), str(path)) == expected
    (tmp_path / "empty").write_bytes(b"")
    assert scanner.implementation((0, 1), str(tmp_path / "empty")) == ""


def test_programs_that_link_libssl_dynamically_are_not_static():
    """nginx and Python's _hashlib carry OpenSSL's version text, not its code."""
    scanner = procs.StaticScanner()
    for path in (shutil.which("nginx") or "/usr/sbin/nginx", shutil.which("curl") or "/usr/bin/curl"):
        assert os.path.exists(path), f"{path} missing (Debian packages nginx-light, curl)"
        st = os.stat(path)
        assert scanner.implementation((st.st_dev, st.st_ino), path) == ""


@pytest.mark.root  # another user's /proc/PID/maps and /proc/PID/root need root
def test_a_process_in_another_namespace_shows_its_libssl(tmp_path):
    """A Python that imported ssl, in a network namespace of its own (unshare -n): a pod process."""
    child = subprocess.Popen(["unshare", "-n", sys.executable, "-c", "import ssl, sys; sys.stdin.read()"],
                             stdin=subprocess.PIPE)
    try:
        mine = wait_for(lambda: [p for p in procs.scan(procs.StaticScanner()).values()
                                 if p.pid == child.pid and p.libssl],  # unshare execs python
                        10, "the namespaced python found with its libssl", interval=0.05)
        proc = mine[0]
        assert proc.netns != procs.host_netns() and not proc.static
        assert all(path.startswith(f"/proc/{proc.pid}/root/") and "libssl.so" in path
                   for path in proc.libssl.values())
        assert proc.nsid is None  # no host device links to this namespace: not a pod of ours
    finally:
        child.communicate(b"", timeout=10)


VISIBILITY = "from collector.tls import procs; print(repr(procs.visibility_problem()), procs.can_read_other_users())"


@pytest.mark.root
def test_a_collector_in_its_own_pid_namespace_is_told_it_sees_no_pod():
    """As in a pod without hostPID: a real child PID namespace (unshare), and the host's, side by side."""
    here = subprocess.run([sys.executable, "-c", VISIBILITY], capture_output=True, text=True, check=True)
    assert here.stdout.split() == ["''", "True"]  # root with every capability, in the host's namespace
    child = subprocess.run(["unshare", "--pid", "--fork", "--mount-proc", sys.executable, "-c", VISIBILITY],
                           capture_output=True, text=True)
    assert child.returncode == 0, child.stderr
    assert "its own PID namespace" in child.stdout and "hostPID: true" in child.stdout
    no_ptrace = subprocess.run(["setpriv", "--inh-caps=-all", "--bounding-set=-sys_ptrace", sys.executable, "-c",
                                VISIBILITY], capture_output=True, text=True, check=True)
    assert no_ptrace.stdout.split() == ["''", "False"]
