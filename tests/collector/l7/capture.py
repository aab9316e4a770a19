"""Real traffic for the L7 tests: a private network namespace (loopback only, lab/testbed/netns.py),
tcpdump writing a pcap while real servers and clients run inside it, and a replay that feeds the pcap's
TCP/UDP payloads (lab/testbed/pcap.py) to an L7Dispatcher segment by segment, each cut to a 512-byte
prefix like the datapath sends."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

from collector.l7 import ConnKey, L7Dispatcher, L7Record
from lab.testbed.netns import REPO, need, run
from lab.testbed.pcap import PREFIX, segments

PROGRAMS = Path(__file__).parent / "programs"


def python(ns: str, program: str, *args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    """Run tests/collector/l7/programs/<program>.py with the venv's python inside the namespace."""
    return run(ns, [sys.executable, str(PROGRAMS / f"{program}.py"), *args], timeout=timeout, cwd=REPO)


@dataclass
class Replay:
    records: list[tuple[ConnKey, L7Record]] = field(default_factory=list)
    segments: int = 0

    def of(self, protocol: str, reply: bool) -> list[L7Record]:
        return [r for _, r in self.records if r.protocol == protocol and r.is_reply == reply]


def replay(pcap: Path, dispatcher: L7Dispatcher, server_ports: set[int], prefix: int = PREFIX) -> Replay:
    """Feed every TCP data segment / UDP datagram of the capture to the dispatcher, cut to `prefix`."""
    out = Replay()
    for event in segments(pcap, server_ports, prefix):
        key = ConnKey(*event[1])
        if event[0] == "close":
            dispatcher.on_close(key)
            continue
        _, _key, from_client, data, length, ts_ns = event
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
