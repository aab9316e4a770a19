"""The connection-table sweep on the kernel's own table (the loaded datapath's conntrack map): every
expired connection reported once and removed, live ones kept, and the caller's `between` run during
the walk — the collector reads its perf rings there, so a sweep of tens of thousands of short
connections (0.15-0.9 s in Python) does not leave the rings unread until they fill and drop events."""

from __future__ import annotations

import shutil

import pytest

from collector.datapath import DatapathConfig, conntrack
from collector.datapath.loader import load
from tests.fixtures.datapath import unique_pin_dir

pytestmark = pytest.mark.root

NOW_NS = 10**12
POLICY = conntrack.GcPolicy(close_grace_ns=10**9, tcp_idle_ns=600 * 10**9, other_idle_ns=60 * 10**9)
CLOSED, OPEN = 5000, 100


@pytest.fixture
def table():
    pin_dir = unique_pin_dir()
    bpf, _fds = load(DatapathConfig(pin_dir=pin_dir))
    try:
        yield bpf[b"conntrack"]
    finally:
        bpf.cleanup()
        shutil.rmtree(pin_dir, ignore_errors=True)


def put_connection(table, client_port: int, last_seen: int, closed: bool) -> None:
    """A TCP connection 10.244.1.2:client_port -> 10.244.1.3:8080 on ifindex 7 as the kernel keeps it."""
    key, entry = table.Key(), table.Leaf()
    key.addr_lo[:4], key.addr_hi[:4] = (10, 244, 1, 2), (10, 244, 1, 3)
    key.port_lo, key.port_hi, key.ifindex, key.family, key.proto = client_port, 8080, 7, 4, conntrack.TCP
    entry.first_seen, entry.last_seen, entry.orig_is_lo = last_seen, last_seen, 1
    entry.packets[0], entry.packets[1] = 5, 4
    flags = 0x1b if closed else 0x18  # both FINs seen, or data only
    entry.flags[0], entry.flags[1] = flags, flags
    table[key] = entry


def test_sweep_reports_expired_connections_once_and_reads_between(table):
    for port in range(10000, 10000 + CLOSED):
        put_connection(table, port, last_seen=1, closed=True)
    for port in range(20000, 20000 + OPEN):
        put_connection(table, port, last_seen=NOW_NS, closed=False)
    calls = []

    ended = conntrack.sweep(table, POLICY, NOW_NS, conntrack.BatchReader(table), lambda: calls.append(1), every=1000)

    assert sorted(e.sport for e in ended) == list(range(10000, 10000 + CLOSED))
    assert {(e.dport, e.packets_fwd, e.packets_rev) for e in ended} == {(8080, 5, 4)}
    assert len(calls) == (CLOSED + OPEN) // 1000  # once per 1000 entries walked, live ones included
    assert sorted(key.port_lo for key in table.keys()) == list(range(20000, 20000 + OPEN))
    assert conntrack.sweep(table, POLICY, NOW_NS) == []
