"""What must not stop the collector: a pod device deleted under load, malformed packets, a crash and
restart (filters stay, maps are reused); and the one-line errors for missing privileges or headers."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from lab.testbed.wait import wait_for
from proto.flow import flow_pb2
from tests.collector.datapath.helpers import TOPOLOGY, curl, of_connection, wait_listening
from tests.fixtures.datapath import unique_pin_dir

pytestmark = pytest.mark.root

THREE_PODS = {**TOPOLOGY, "pods": [*TOPOLOGY["pods"],
                                   {"name": "spare", "namespace": "data", "labels": {"app": "spare"},
                                    "command": "exec $FLOWSCOPE_PYTHON -m http.server 8080"}]}

MALFORMED = r'''
import random, sys
from scapy.all import Ether, IP, IPv6, TCP, UDP, ICMP, Raw, sendp
dst, dst6 = sys.argv[1], sys.argv[2]
E = lambda **kw: Ether(dst="ff:ff:ff:ff:ff:ff", **kw)  # no ARP: the frames need not be delivered
frames = [
    E(type=0x0800) / Raw(b"\x45"),
    E() / IP(dst=dst, ihl=2) / TCP(),
    E() / IP(dst=dst, len=2000) / TCP(dport=8080),
    E() / IP(dst=dst) / TCP(dport=8080, dataofs=1),
    E() / IP(dst=dst) / TCP(dport=8080, dataofs=15) / Raw(b"x"),
    E() / IP(dst=dst, frag=5, proto=6) / Raw(b"abc"),
    E() / IP(dst=dst, proto=1) / Raw(b"\x08"),
    E() / IP(dst=dst) / UDP(dport=53, len=3) / Raw(b"\xff" * 30),
    E() / IP(dst=dst) / UDP(dport=53) / Raw(b"\xc0\x0c" * 40),
    E() / IP(dst=dst) / TCP(dport=8080, flags="PA") / Raw(b"GET /" + bytes(range(256)) * 4),
    E() / IP(dst=dst) / TCP(dport=80, flags="PA") / Raw(b"HTTP/1.1 999 \xff\xfe\r\n" * 50),
    E() / IPv6(dst=dst6, plen=5000) / Raw(b"x"),
    E() / IPv6(dst=dst6, nh=6) / Raw(b"\x00\x01"),
    E() / IPv6(dst=dst6, nh=17) / UDP(dport=53) / Raw(b"\x00" * 3),
]
rng = random.Random(7)
for _ in range(300):
    frames.append(E(type=rng.choice([0x0800, 0x86dd])) / Raw(bytes(rng.randrange(256) for _ in range(rng.randrange(1, 120)))))
    frames.append(E() / IP(dst=dst, proto=rng.choice([1, 6, 17, 58, 132])) / Raw(bytes(rng.randrange(256) for _ in range(rng.randrange(0, 80)))))
sendp(frames, iface="eth0", verbose=False)
print(len(frames))
'''


def test_pod_device_deleted_under_load(lab_factory, collector_factory):
    lab = lab_factory(THREE_PODS)
    run = collector_factory(lab)
    wait_listening(lab, "server", 8080)
    wait_listening(lab, "spare", 8080)
    server = lab.pod("server")
    load = lab.popen("client", f"while true; do curl -s -o /dev/null --max-time 1 http://{server.ipv4}:8080/; done",
                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        assert run.wait_for(lambda f: f.interface.name == server.device, count=20)
        subprocess.run(["ip", "link", "del", server.device], check=True)
        wait_for(lambda: server.ifindex not in run.collector.datapath.attached, 5,
                 "the deleted device dropped from the attached ones", interval=0.1)
    finally:
        load.kill()
        load.wait()
    port = curl(lab, "client", f"http://{lab.pod('spare').ipv4}:8080/")
    assert run.wait_for(of_connection(port), count=4), "the collector keeps observing the other pods"
    assert run.collector.datapath.stats.decode_errors == 0


def test_malformed_packets_never_crash_the_decoder(lab_factory, collector_factory):
    lab = lab_factory(TOPOLOGY)
    run = collector_factory(lab, aggregation="none")
    server = lab.pod("server")
    wait_listening(lab, "server", 8080)
    sent = lab.exec("client", [sys.executable, "-c", MALFORMED, server.ipv4, server.ipv6])
    assert sent.returncode == 0, sent.stderr
    assert int(sent.stdout) > 600
    port = curl(lab, "client", f"http://{server.ipv4}:8080/")
    assert run.wait_for(of_connection(port), count=10)
    stats = run.collector.datapath.stats
    assert stats.decode_errors == 0 and stats.sink_errors == 0
    hostile = run.snapshot(of_connection(20, 8080))  # scapy's default source port
    assert hostile, "the well-formed part of the hostile traffic is still reported"


def collector_cmd(pin_dir: str, lab=None) -> list[str]:
    cmd = [sys.executable, "-m", "flowscope", "collector", "--pin-dir", pin_dir, "--listen-address", "",
           "--unix-socket", ""]
    return cmd + (["--lab-state", lab.state_path] if lab else [])


def test_not_root_is_a_one_line_error():
    pin_dir = unique_pin_dir()
    for prefix in (["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups"],
                   ["setpriv", "--inh-caps=-all", "--bounding-set=-all"]):
        result = subprocess.run(prefix + collector_cmd(pin_dir), capture_output=True, text=True, timeout=60,
                                cwd=os.getcwd())
        assert result.returncode == 1, result.stderr
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("flowscope collector: error: loading the eBPF datapath "
                                                       "needs root"), result.stderr
    assert not os.path.exists(pin_dir)


def test_kernel_headers_missing_names_the_setup_step(tmp_path):
    env = {**os.environ, "BCC_KERNEL_SOURCE": str(tmp_path / "no-headers")}
    result = subprocess.run(collector_cmd(unique_pin_dir()), capture_output=True, text=True, timeout=60, env=env)
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "kernel headers" in lines[0] and "make setup" in lines[0], result.stderr


HOLD_CONNECTION = r'''
import socket, sys
s = socket.create_connection((sys.argv[1], 8080))
print(s.getsockname()[1], flush=True)
sys.stdin.readline()
s.sendall(b"GET / HTTP/1.0\r\n\r\n")
while s.recv(65536):
    pass
'''


def filter_ids(device: str) -> list[str]:
    out = subprocess.run(["tc", "filter", "show", "dev", device, "ingress"], capture_output=True, text=True).stdout
    out += subprocess.run(["tc", "filter", "show", "dev", device, "egress"], capture_output=True, text=True).stdout
    return [word.split()[0] for word in out.split(" id ")[1:] if "flowscope" in out]


def test_crash_keeps_filters_and_restart_reuses_pinned_maps(lab_factory, collector_factory):
    lab = lab_factory(TOPOLOGY)
    server = lab.pod("server")
    wait_listening(lab, "server", 8080)
    pin_dir = unique_pin_dir()
    first = subprocess.Popen(collector_cmd(pin_dir, lab), stderr=subprocess.DEVNULL)
    try:
        wait_for(lambda: len(filter_ids(server.device)) >= 2, 30, "the first collector's filters on the pod device",
                 interval=0.1)
        before = filter_ids(server.device)
        assert len(before) == 2, "the first collector attached to the pod device"
        client = lab.popen("client", [sys.executable, "-c", HOLD_CONNECTION, server.ipv4],
                           stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        port = int(client.stdout.readline())
        time.sleep(0.3)
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait()
    assert filter_ids(server.device) == before, "a crashed collector leaves its filters attached"

    run = collector_factory(lab, pin_dir=pin_dir)
    after = filter_ids(server.device)
    assert len(after) == 2 and not set(after) & set(before), "the restart replaced both filters in place"
    client.stdin.write("go\n")
    client.stdin.flush()
    client.wait(timeout=10)
    ended = run.wait_for(lambda f: of_connection(port)(f) and f.interface.name == server.device
                         and "closed" in f.Summary)
    assert len(ended) == 1
    flow = ended[0]
    # The pinned connection table kept the handshake from before the restart: same originator, all packets.
    assert (flow.IP.source, flow.l4.TCP.source_port) == (lab.pod("client").ipv4, port)
    assert flow.l4.TCP.flags.SYN and flow.counters.packets_forward >= 4
    assert not run.snapshot(lambda f: of_connection(port)(f) and f.Summary == "TCP Flags: SYN"), \
        "no connection start is reported after the restart"
    assert flow.verdict == flow_pb2.FORWARDED
