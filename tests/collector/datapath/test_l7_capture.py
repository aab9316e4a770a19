"""What the kernel sends to the L7 parsers: prefix mode for HTTP-looking payloads on any port, every
segment for HTTP/2 (preface), nothing for other payloads. Recorded at the decoder's L7 interface."""

from __future__ import annotations

import threading
import time

import pytest

from lab.testbed.wait import wait_for
from tests.collector.datapath.helpers import TOPOLOGY, wait_listening

pytestmark = pytest.mark.root

SEND = r'''
import socket, sys, time
s = socket.create_connection((sys.argv[1], 9999)); s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
for chunk in sys.argv[2:]:
    s.sendall(chunk.encode().decode("unicode_escape").encode("latin1")); time.sleep(0.05)
print(s.getsockname()[1])
s.close()
'''


class RecordingL7:
    """Stands in for collector.l7.L7Dispatcher at its contract: records what the datapath hands over."""

    def __init__(self) -> None:
        self.segments: list[tuple[int, bool, bytes, int]] = []
        self.closed: list[int] = []
        self._lock = threading.Lock()

    def on_segment(self, conn, from_client, payload, segment_len, ts_ns):
        with self._lock:
            self.segments.append((conn.client_port, from_client, payload, segment_len))
        return []

    def on_close(self, conn):
        self.closed.append(conn.client_port)

    def of(self, port: int) -> list[tuple[int, bool, bytes, int]]:
        with self._lock:
            return [s for s in self.segments if s[0] == port]


def send(lab, *chunks: str) -> int:
    out = lab.exec("client", ["python3", "-c", SEND, lab.pod("server").ipv4, *chunks], check=True)
    return int(out.stdout)


def test_payload_capture_modes(lab_factory, collector_factory):
    lab = lab_factory(TOPOLOGY)
    run = collector_factory(lab, payload_bytes=64)
    recorder = RecordingL7()
    run.collector.decoder.l7 = recorder
    wait_listening(lab, "server", 9999)

    big = "x" * 3000
    h2 = send(lab, r"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", big, big, big)
    http = send(lab, r"GET /a HTTP/1.1\r\nHost: s\r\n\r\n", "y" * 200)
    other = send(lab, "hello, not a known protocol", big)
    wait_for(lambda: len(recorder.of(h2)) >= 4 and len(recorder.of(http)) >= 2, 10,
             "4 HTTP/2 and 2 HTTP/1 captures", interval=0.05)

    stream = recorder.of(h2)
    assert [len(p) for _, _, p, _ in stream] == [24, 3000, 3000, 3000], "HTTP/2: every segment, whole"
    assert stream[0][2] == b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" and all(s[1] for s in stream)
    prefix = recorder.of(http)
    assert [(len(p), n) for _, _, p, n in prefix] == [(28, 28), (64, 200)], "HTTP/1: a 64-byte prefix"
    assert prefix[0][2].startswith(b"GET /a HTTP/1.1")
    assert recorder.of(other) == [], "unknown payload on an unknown port is not sent"
    wait_for(lambda: h2 in recorder.closed, 5, "the L7 parsers to hear the connection left the table",
             interval=0.1)
