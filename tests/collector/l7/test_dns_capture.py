"""DNS parsed from REAL traffic: dnsmasq in a private namespace answering dig (UDP and TCP), with an
upstream stand-in that answers SERVFAIL; the capture replayed in 512-byte prefixes. Every answer must
equal dig's own output, tshark must agree on queries and rcodes, and the FqdnCache must name the IPs."""

from __future__ import annotations

import collections
import re
import socket
import sys

import dns.rcode
import pytest

from collector.l7 import L7Dispatcher

from lab.testbed.netns import background, need, netns, run, tcpdump, wait_port
from .capture import replay, tshark_values
pytestmark = pytest.mark.root

QUERIES = [  # (name, type, extra dig flags: server address, transport)
    ("a.test", "A", []),
    ("v6.test", "AAAA", []),
    ("alias.test", "A", []),
    ("nope.test", "A", []),
    ("x.fail.example", "A", []),
    ("a.test", "A", ["+tcp"]),
    ("v6.test", "AAAA", ["+tcp"]),
    ("alias.test", "A", ["@::1"]),  # over IPv6
]


def dig_answer(text: str) -> tuple[str, set[str], list[str], int | None]:
    """(status, ips, cnames, min ttl) from dig's own output."""
    status = re.search(r"status: (\w+)", text).group(1)
    ips, cnames, ttls = set(), [], []
    section = re.search(r";; ANSWER SECTION:\n(.*?)\n\n", text, re.S)
    for line in (section.group(1).splitlines() if section else []):
        name, ttl, _, rtype, value = line.split(None, 4)
        ttls.append(int(ttl))
        if rtype in ("A", "AAAA"):
            ips.add(value)
        elif rtype == "CNAME":
            cnames.append(value)
    return status, ips, cnames, min(ttls) if ttls else None


def test_dig_against_dnsmasq(tmp_path):
    need("dnsmasq"), need("dig")
    pcap = tmp_path / "dns.pcap"
    dnsmasq = ["dnsmasq", "--no-daemon", "--conf-file=/dev/null", "--no-resolv", "--no-hosts", "--pid-file=",
               "--listen-address=127.0.0.1,::1", "--bind-interfaces", "--port=53", "--local-ttl=300",
               "--local=/test/", "--address=/a.test/10.0.0.1", "--host-record=v6.test,fd00::1",
               "--host-record=target.test,10.0.0.2", "--cname=alias.test,target.test",
               "--server=/fail.example/127.0.0.1#5300"]
    with netns() as ns, background(ns, [sys.executable, "tests/collector/l7/programs/dns_servfail.py", "5300"],
                                    ready="READY"), background(ns, dnsmasq):
        wait_port(ns, 53, udp=True)
        with tcpdump(ns, pcap, "port 53"):
            digs = [run(ns, ["dig", *(flags if "@::1" in flags else ["@127.0.0.1", *flags]), name, qtype]).stdout
                    for name, qtype, flags in QUERIES]

    dispatcher = L7Dispatcher()
    result = replay(pcap, dispatcher, {53})
    queries, answers = result.of("dns", False), result.of("dns", True)
    assert dispatcher.stats.parse_errors["dns"] == 0, dispatcher.stats.errors_by_kind
    assert [(q.layer7.dns.query, list(q.layer7.dns.qtypes)) for q in queries] == [
        (f"{name}.", [qtype]) for name, qtype, _ in QUERIES]
    assert len(answers) == len(QUERIES)
    for (name, qtype, flags), text, answer in zip(QUERIES, digs, answers):
        status, ips, cnames, ttl = dig_answer(text)
        got = answer.layer7.dns
        assert got.query == f"{name}." and list(got.qtypes) == [qtype]
        assert dns.rcode.to_text(got.rcode) == status, (name, status, got)
        assert set(got.ips) == ips and list(got.cnames) == cnames, (name, text, got)
        if ttl is not None:
            assert got.ttl == ttl
        assert answer.layer7.latency_ns > 0
    statuses = [dns.rcode.to_text(a.layer7.dns.rcode) for a in answers]
    assert statuses == ["NOERROR", "NOERROR", "NOERROR", "NXDOMAIN", "SERVFAIL", "NOERROR", "NOERROR", "NOERROR"]
    assert {k.family for k, r in result.records} == {socket.AF_INET, socket.AF_INET6}
    alias = answers[2].layer7.dns
    assert list(alias.rrtypes) == ["CNAME", "A"] and list(alias.cnames) == ["target.test."]
    assert answers[0].summary == 'DNS Answer "10.0.0.1" TTL: 300 (Query a.test. A)'
    assert answers[3].summary == "DNS Answer RCode: NXDOMAIN (Query nope.test. A)"

    # the answers name the addresses for later flows (destination_names)
    assert dispatcher.fqdn.names_for_ip("10.0.0.1") == ["a.test"]
    assert dispatcher.fqdn.names_for_ip("10.0.0.2") == ["alias.test", "target.test"]
    assert dispatcher.fqdn.names_for_ip("fd00::1") == ["v6.test"]

    # tshark agrees on the client's queries and the rcodes answered to it (the upstream leg is port 5300)
    ts_queries = tshark_values(pcap, "dns.flags.response == 0 && udp.dstport == 53 || "
                                     "dns.flags.response == 0 && tcp.dstport == 53", "dns.qry.name")
    assert collections.Counter(ts_queries) == collections.Counter(name for name, _, _ in QUERIES)
    ts_rcodes = tshark_values(pcap, "dns.flags.response == 1 && (udp.srcport == 53 || tcp.srcport == 53)",
                              "dns.flags.rcode")
    assert collections.Counter(map(int, ts_rcodes)) == collections.Counter(a.layer7.dns.rcode for a in answers)
