"""Fuzz the DNS parser (collector/l7/dns.py) over UDP datagrams and TCP's length-prefixed stream."""

import atheris

with atheris.instrument_imports(include=["collector.l7", "dns"]):
    import dns.message
    import dns.rrset

    from collector.l7.dns import DnsParser
    from collector.l7.types import L7Config, L7ParseError, L7Stats

from tests.fuzz.engine import conversation, feed, run

CONFIG = L7Config()


def _exchange() -> list[tuple[bool, bytes]]:
    query = dns.message.make_query("api.shop.svc.cluster.local.", "A")
    response = dns.message.make_response(query)
    response.answer.append(dns.rrset.from_text("api.shop.svc.cluster.local.", 30, "IN", "CNAME", "web.shop."))
    response.answer.append(dns.rrset.from_text("web.shop.", 30, "IN", "A", "10.96.0.10", "10.96.0.11"))
    return [(True, query.to_wire()), (False, response.to_wire())]


def _tcp(parts: list[tuple[bool, bytes]]) -> list[tuple[bool, bytes]]:
    return [(side, len(wire).to_bytes(2, "big") + wire) for side, wire in parts]


SEEDS = [b"\x00" + conversation(_exchange()), b"\x01" + conversation(_tcp(_exchange()))]


def one_input(data: bytes) -> None:
    tcp = bool(data[:1]) and data[0] & 1 == 1
    feed(DnsParser(CONFIG, L7Stats(), tcp=tcp), data[1:], L7ParseError)


def main() -> None:
    run(one_input, SEEDS)


if __name__ == "__main__":
    main()
