"""HTTP/1.1 client over a raw socket for what curl does not do: a request whose head is written in
three pieces (TCP_NODELAY, pauses: three segments), and pipelined requests in one write.
Prints the status line of every response it reads, one per line."""

import re
import socket
import sys
import time

port = int(sys.argv[1])


def read_all(sock: socket.socket) -> bytes:
    data = b""
    while chunk := sock.recv(65536):
        data += chunk
    return data


# 1. one request, its head split across three segments
s = socket.create_connection(("127.0.0.1", port))
s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
head = (b"GET /ok?secret=1 HTTP/1.1\r\nHost: split.test:%d\r\nX-Long: " % port + b"v" * 600
        + b"\r\nConnection: close\r\n\r\n")
for piece in (head[:10], head[10:400], head[400:]):
    s.sendall(piece)
    time.sleep(0.05)
statuses = re.findall(rb"HTTP/1\.1 (\d{3})", read_all(s))
s.close()

# 2. a request whose head (a 3000-byte cookie) is longer than the 512-byte prefix the datapath sends
s = socket.create_connection(("127.0.0.1", port))
s.sendall(b"GET /ok HTTP/1.1\r\nHost: cookie.test\r\nCookie: " + b"c" * 3000 + b"\r\nConnection: close\r\n\r\n")
statuses += re.findall(rb"HTTP/1\.1 (\d{3})", read_all(s))
s.close()

# 3. five pipelined requests in one write (the last closes the connection)
s = socket.create_connection(("127.0.0.1", port))
host = b"Host: pipe.test\r\n"
reqs = (b"GET /ok HTTP/1.1\r\n" + host + b"\r\n" + b"GET /missing HTTP/1.1\r\n" + host + b"\r\n"
        + b"HEAD /ok HTTP/1.1\r\n" + host + b"\r\n" + b"GET /chunked HTTP/1.1\r\n" + host + b"\r\n"
        + b"GET /fail HTTP/1.1\r\n" + host + b"Connection: close\r\n\r\n")
s.sendall(reqs)
data = read_all(s)
s.close()
statuses += re.findall(rb"HTTP/1\.1 (\d{3}) ", data)
print("\n".join(code.decode() for code in statuses))
