"""`flowscope collector` and `flowscope up` (with the collector) stop within 5 s of SIGINT or SIGTERM
whatever their Observer clients do (issue #16: `up` with follow clients open ignored Ctrl-C for 35 s)."""

import shutil

import pytest

from tests.fixtures.datapath import unique_pin_dir
from tests.fixtures.stopping import empty_lab, free_port, start_command, stop_and_check
from tests.relay.test_stop import SIGNALS, busy_clients, close

pytestmark = pytest.mark.root


@SIGNALS
def test_collector_stops_promptly_with_clients_following(tmp_path, sig):
    pin_dir, port = unique_pin_dir(), free_port()
    try:
        proc, log = start_command(["collector", "--pin-dir", pin_dir, "--listen-address", f"127.0.0.1:{port}",
                                   "--unix-socket", "", "--lab-state", empty_lab(tmp_path)], port)
        calls, channels = busy_clients(port, with_flows=False)
        try:
            stop_and_check(proc, log, sig)
        finally:
            close(calls, channels)
    finally:
        shutil.rmtree(pin_dir, ignore_errors=True)


@SIGNALS
def test_up_stops_promptly_with_clients_following(tmp_path, sig):
    pin_dir, port, collector_port = unique_pin_dir(), free_port(), free_port()
    try:
        proc, log = start_command(["up", "--storage", f"chdb://{tmp_path}/db", "--pin-dir", pin_dir,
                                   "--collector-address", f"127.0.0.1:{collector_port}",
                                   "--listen-address", f"127.0.0.1:{port}", "--metrics-address", "",
                                   "--http-api-address", "", "--ui-address", "", "--unix-socket", "",
                                   "--lab-state", empty_lab(tmp_path), "--node-name", "stop-node",
                                   "--identity-state", str(tmp_path / "ids.json")], port)
        calls, channels = busy_clients(port, with_flows=False)
        more, more_channels = busy_clients(collector_port, with_flows=False)
        try:
            stop_and_check(proc, log, sig)
        finally:
            close(calls + more, channels + more_channels)
    finally:
        shutil.rmtree(pin_dir, ignore_errors=True)
