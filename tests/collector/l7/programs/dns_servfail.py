"""An upstream DNS server that answers SERVFAIL to everything (dnsmasq forwards its answer to the
client: the only way to get a real SERVFAIL out of dnsmasq). Prints READY once bound."""

import socket
import sys

import dns.message
import dns.rcode

sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
sock.bind(("127.0.0.1", int(sys.argv[1])))
print("READY", flush=True)
while True:
    wire, peer = sock.recvfrom(4096)
    reply = dns.message.make_response(dns.message.from_wire(wire))
    reply.set_rcode(dns.rcode.SERVFAIL)
    sock.sendto(reply.to_wire(), peer)
