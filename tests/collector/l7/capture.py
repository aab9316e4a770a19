"""Real traffic for the L7 tests: a private network namespace (loopback only), tcpdump writing a pcap
while real servers and clients run inside it, and a replay that feeds the pcap's TCP/UDP payloads to
an L7Dispatcher segment by segment, each cut to a 512-byte prefix like the datapath sends."""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from scapy.utils import RawPcapReader

from collector.l7 import ConnKey, L7Dispatcher, L7Record
from lab.testbed.wait import wait_for

PREFIX = 512
PROGRAMS = Path(__file__).parent / "programs"
REPO = Path(__file__).resolve().parents[3]


def need(binary: str) -> str:
    path = shutil.which(binary)
    assert path, f"{binary} is required for the L7 capture tests (deploy/local/setup.sh installs it)"
    return path


@contextlib.contextmanager
def netns():
    """A fresh network namespace with loopback up; its ports are private to the test."""
    name = "l7t" + secrets.token_hex(4)
    subprocess.run(["ip", "netns", "add", name], check=True)
    try:
        subprocess.run(["ip", "netns", "exec", name, "ip", "link", "set", "lo", "up"], check=True)
        yield name
    finally:
        for pid in subprocess.run(["ip", "netns", "pids", name], capture_output=True, text=True).stdout.split():
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(pid), signal.SIGKILL)
        subprocess.run(["ip", "netns", "del", name], check=False)


def in_ns(ns: str, cmd: list[str]) -> list[str]:
    return ["ip", "netns", "exec", ns, *cmd]


def run(ns: str, cmd: list[str], timeout: float = 60, **kw) -> subprocess.CompletedProcess:
    result = subprocess.run(in_ns(ns, cmd), capture_output=True, text=True, timeout=timeout, **kw)
    assert result.returncode == 0, f"{cmd[0]} failed ({result.returncode}): {result.stderr[-2000:]}"
    return result


def python(ns: str, program: str, *args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    """Run tests/collector/l7/programs/<program>.py with the venv's python inside the namespace."""
    return run(ns, [sys.executable, str(PROGRAMS / f"{program}.py"), *args], timeout=timeout, cwd=REPO)


@contextlib.contextmanager
def background(ns: str, cmd: list[str], ready: str | None = None, timeout: float = 15):
    """A server inside the namespace; waits for `ready` on its stdout (or a short settle) and kills it after."""
    proc = subprocess.Popen(in_ns(ns, cmd), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            cwd=REPO)
    try:
        if ready is not None:
            deadline = time.monotonic() + timeout
            seen = []
            while time.monotonic() < deadline:
                line = proc.stdout.readline()
                if not line:
                    raise AssertionError(f"{cmd[0]} exited before ready: {''.join(seen)[-2000:]}")
                seen.append(line)
                if ready in line:
                    break
            else:
                raise AssertionError(f"{cmd[0]} not ready after {timeout}s")
        else:
            time.sleep(0.3)
            assert proc.poll() is None, f"{cmd[0]} exited: {proc.stdout.read()[-2000:]}"
        yield proc
    finally:
        proc.kill()
        proc.wait()


def wait_port(ns: str, port: int, udp: bool = False, timeout: float = 10) -> None:
    flag = "-lun" if udp else "-ltn"
    wait_for(lambda: f":{port} " in subprocess.run(in_ns(ns, ["ss", "-H", flag]), capture_output=True,
                                                   text=True).stdout, timeout, f"a listener on port {port} in {ns}")


@contextlib.contextmanager
def tcpdump(ns: str, pcap: Path, bpf_filter: str = "", snaplen: int = 0, strict: bool = True):
    """tcpdump on the namespace's loopback (full packets unless snaplen), until the block ends. Yields a
    dict that gets "dropped" (packets the kernel dropped) at the end; strict: any drop fails the test."""
    need("tcpdump")
    cmd = ["tcpdump", "-i", "lo", "-s", str(snaplen), "-U", "--immediate-mode", "-B", "65536", "-w", str(pcap),
           *bpf_filter.split()]
    proc = subprocess.Popen(in_ns(ns, cmd), stderr=subprocess.PIPE, text=True)
    line = proc.stderr.readline()
    assert "listening on" in line, f"tcpdump did not start: {line}"
    info = {"dropped": None}
    try:
        yield info
    finally:
        time.sleep(0.2)  # let the last packets reach the file
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=10)
        report = proc.stderr.read()
        found = re.search(r"^(\d+) packets dropped by kernel", report, re.M)
        info["dropped"] = int(found.group(1)) if found else None
        if strict:
            assert info["dropped"] == 0, f"tcpdump lost packets, the comparison is void: {report}"


@dataclass
class Replay:
    records: list[tuple[ConnKey, L7Record]] = field(default_factory=list)
    segments: int = 0

    def of(self, protocol: str, reply: bool) -> list[L7Record]:
        return [r for _, r in self.records if r.protocol == protocol and r.is_reply == reply]


def _packets(pcap: Path):
    """(ts_ns, family, proto, src, dst, seq, flags, payload, payload length) per TCP/UDP packet of an
    Ethernet pcap. Lengths come from the IP/UDP headers, so a capture with a short snaplen still tells
    the full segment length (as the datapath does). Headers are unpacked by hand over scapy's raw
    reader: full dissection is ~50x slower."""
    for data, meta in RawPcapReader(str(pcap)):
        ts_ns = meta.sec * 1_000_000_000 + meta.usec * 1000
        ethertype = int.from_bytes(data[12:14], "big")
        ip = data[14:]
        if ethertype == 0x0800:
            ihl = (ip[0] & 0x0F) * 4
            family, proto, l4, l4_len = socket.AF_INET, ip[9], ip[ihl:], int.from_bytes(ip[2:4], "big") - ihl
            src_ip, dst_ip = socket.inet_ntop(family, ip[12:16]), socket.inet_ntop(family, ip[16:20])
        elif ethertype == 0x86DD:
            family, proto, l4, l4_len = socket.AF_INET6, ip[6], ip[40:], int.from_bytes(ip[4:6], "big")
            src_ip, dst_ip = socket.inet_ntop(family, ip[8:24]), socket.inet_ntop(family, ip[24:40])
        else:
            continue
        sport, dport = int.from_bytes(l4[0:2], "big"), int.from_bytes(l4[2:4], "big")
        if proto == socket.IPPROTO_TCP:
            seq = int.from_bytes(l4[4:8], "big")
            offset = (l4[12] >> 4) * 4
            yield (ts_ns, family, proto, (src_ip, sport), (dst_ip, dport), seq, l4[13], l4[offset:l4_len],
                   l4_len - offset)
        elif proto == socket.IPPROTO_UDP:
            udp_len = int.from_bytes(l4[4:6], "big")
            yield ts_ns, family, proto, (src_ip, sport), (dst_ip, dport), 0, 0, l4[8:udp_len], udp_len - 8


def segments(pcap: Path, server_ports: set[int], prefix: int = PREFIX):
    """The calls the datapath would make, in order: ("data", key, from_client, prefix bytes, length, ts)
    or ("close", key). TCP clients are known from the SYN; without one (and for UDP) the side using a
    server port is the server. Retransmitted segments (seq before the next expected) are dropped."""
    clients: dict[frozenset, tuple] = {}
    next_seq: dict[tuple, int] = {}  # (src, dst) -> next sequence number
    fins: dict[frozenset, int] = {}
    for ts_ns, family, proto, src, dst, seq, flags, data, length in _packets(pcap):
        pair = frozenset((src, dst))
        if flags & 0x02:  # SYN
            if not flags & 0x10:
                clients[pair] = src
            next_seq[(src, dst)] = seq + 1
            continue
        client = clients.get(pair) or (dst if src[1] in server_ports else src)
        server = dst if client == src else src
        key = ConnKey(family, client[0], client[1], server[0], server[1], proto)
        if length > 0:
            if proto == socket.IPPROTO_TCP:
                expected = next_seq.get((src, dst))
                if expected is not None and ((seq - expected) & 0xFFFFFFFF) >= 0x80000000:
                    continue  # retransmission of bytes already delivered
                next_seq[(src, dst)] = (seq + length) & 0xFFFFFFFF
            yield "data", key, src == client, bytes(data[:prefix]), length, ts_ns
        if flags & 0x04:  # RST
            yield "close", key
        elif flags & 0x01:  # FIN: the connection is over when both sides sent one
            fins[pair] = fins.get(pair, 0) + 1
            if fins[pair] == 2:
                yield "close", key


def replay(pcap: Path, dispatcher: L7Dispatcher, server_ports: set[int], prefix: int = PREFIX) -> Replay:
    """Feed every TCP data segment / UDP datagram of the capture to the dispatcher, cut to `prefix`."""
    out = Replay()
    for event in segments(pcap, server_ports, prefix):
        if event[0] == "close":
            dispatcher.on_close(event[1])
            continue
        _, key, from_client, data, length, ts_ns = event
        out.segments += 1
        for record in dispatcher.on_segment(key, from_client, data, length, ts_ns):
            out.records.append((key, record))
    return out


def tshark(pcap: Path, display_filter: str, fields: list[str], decode_as: list[str] = ()) -> list[list[str]]:
    """tshark's own dissection: one row of field values per matching packet (several occurrences of a
    field in one packet joined by "|")."""
    cmd = [need("tshark"), "-r", str(pcap), "-Y", display_filter, "-T", "fields", "-E", "separator=\t",
           "-E", "aggregator=|"]
    for d in decode_as:
        cmd += ["-d", d]
    for f in fields:
        cmd += ["-e", f]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, f"tshark failed: {result.stderr[-1000:]}"
    return [line.split("\t") for line in result.stdout.splitlines()]


def tshark_values(pcap: Path, display_filter: str, field_name: str, decode_as: list[str] = ()) -> list[str]:
    """Every value of one field over the matching packets (a packet may carry several messages)."""
    return [v for row in tshark(pcap, display_filter, [field_name], decode_as) for v in row[0].split("|") if v]
