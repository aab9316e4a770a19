"""HTTP/1.1 test server (python http.server): 200/404/500, HEAD, POST with body, chunked and large
responses, keep-alive and pipelining; "?delay_ms=N" on a GET delays its response (BaseHTTPRequestHandler reads requests one by one from a buffered
stream). Prints "READY <port>" once listening."""

import sys
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body are two writes: Nagle + delayed ACK would add 40 ms

    def log_message(self, *args):
        pass

    def _send(self, code: int, body: bytes, head: bool = False) -> None:
        self.send_response(code)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if not head:
            self.wfile.write(body)

    def do_GET(self):
        path, _, query = self.path.partition("?")
        if query.startswith("delay_ms="):  # server time, so latency is not just loopback microseconds
            time.sleep(int(query[9:]) / 1000)
        if path == "/ok":
            self._send(200, b"ok\n")
        elif path == "/big":
            self._send(200, b"b" * 100_000)
        elif path == "/fail":
            self._send(500, b"boom\n")
        elif path == "/chunked":
            self.send_response(200)
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            for chunk in (b"a" * 10, b"b" * 3000, b"c" * 700):
                self.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                self.wfile.flush()
            self.wfile.write(b"0\r\n\r\n")
        else:
            self._send(404, b"not found\n")

    def do_HEAD(self):
        self._send(200 if self.path == "/ok" else 404, b"x" * 1234, head=True)

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        self._send(201, b"got %d\n" % len(body))


server = ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1]) if len(sys.argv) > 1 else 0), Handler)
print("READY", server.server_address[1], flush=True)
server.serve_forever()
