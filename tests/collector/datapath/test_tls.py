"""`flowscope collector` serving its Observer API over mutual TLS, as the DaemonSet runs it: a client
with the CA and a client certificate reads the pods' flows; every bad client is refused with one line
naming the cause; certificates swapped on disk serve the next connection without a restart."""

from __future__ import annotations

import signal
import subprocess
import threading

import pytest

from lab.testbed.wait import wait_for
from tests.collector.datapath.helpers import TOPOLOGY, curl, wait_listening
from tests.collector.datapath.test_agent import free_port
from tests.collector.datapath.test_robustness import collector_cmd
from tests.common.tls_matrix import assert_refuses_bad_clients, assert_rotation_is_used, read_flows, served_files
from tests.fixtures.datapath import unique_pin_dir
from tests.fixtures.relay import make_pki

pytestmark = pytest.mark.root
SERVER_NAME = "relay.flowscope.test"  # the test PKI's server certificate


def test_collector_over_mutual_tls(lab_factory, test_pki, tmp_path):
    lab = lab_factory(TOPOLOGY)
    wait_listening(lab, "server", 8080)
    served = served_files(tmp_path / "tls", test_pki)
    port = free_port()
    cmd = collector_cmd(unique_pin_dir(), lab)
    cmd[cmd.index("--listen-address") + 1] = f"0.0.0.0:{port}"  # beyond loopback, as on a node
    proc = subprocess.Popen(cmd + ["--tls-cert-file", served.cert, "--tls-key-file", served.key,
                                   "--tls-client-ca-files", served.client_ca], stderr=subprocess.PIPE, text=True)
    log: list[str] = []
    try:
        for line in proc.stderr:
            log.append(line)
            if "Observer API on" in line:
                break
        assert "(mutual TLS)" in log[-1], "".join(log)
        threading.Thread(target=lambda: log.extend(proc.stderr), daemon=True).start()
        address = f"localhost:{port}"
        curl(lab, "client", f"http://{lab.pod('server').ipv4}:8080/")
        wait_for(lambda: read_flows(address, test_pki, SERVER_NAME), timeout=20,
                 what="the pods' flows over mutual TLS")
        assert_refuses_bad_clients(address, test_pki, SERVER_NAME)
        assert_rotation_is_used(address, served, test_pki, make_pki(tmp_path / "next"), SERVER_NAME)
        assert any("certificates reloaded" in line for line in log), "".join(log)
        assert proc.poll() is None
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
    assert proc.returncode == 0, "".join(log)
