"""The HTTP faces' server, by hand: `.venv/bin/python bench/http_serving.py [--seconds 5] [--clients 16]`.

Side by side in one run, the same WSGI app (a 1 KB JSON answer, or 1 MiB) behind:
  stdlib        what the JSON API ran on before: http.server's ThreadingHTTPServer (thread per connection,
                HTTP/1.0, no timeouts), here through wsgiref
  stdlib+ssl    the same with Python's ssl wrapped around the listening socket (handshake in the thread)
  waitress      ui/serving.py, plain
  waitress+tls  ui/serving.py with TLSChannel (ssl on memory BIOs inside waitress's loop)
Loads, with `hey` (-c clients, -z seconds): keep-alive, a new connection per request, a 1 MiB body, and
keep-alive while 200 slowloris sockets trickle request headers one byte at a time.
"""

from __future__ import annotations

import argparse
import datetime
import json
import re
import socket
import socketserver
import ssl
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from cryptography import x509  # noqa: E402
from cryptography.hazmat.primitives import hashes, serialization  # noqa: E402
from cryptography.hazmat.primitives.asymmetric import ec  # noqa: E402
from cryptography.x509.oid import NameOID  # noqa: E402

from ui.serving import Limits, TLSFiles, serve  # noqa: E402

SMALL = json.dumps([{"flow": i, "source": "shop/frontend", "destination": "shop/backend"} for i in range(16)]).encode()
BIG = b"x" * (1 << 20)


def app(environ, start_response):
    body = BIG if environ["PATH_INFO"] == "/big" else SMALL
    start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
    return [body]


def self_signed(directory: Path) -> tuple[str, str]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now)
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]), critical=False)
            .sign(key, hashes.SHA256()))
    cert_path, key_path = directory / "tls.crt", directory / "tls.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return str(cert_path), str(key_path)


class QuietHandler(WSGIRequestHandler):
    def log_message(self, *args) -> None:
        pass


class ThreadingWSGIServer(socketserver.ThreadingMixIn, WSGIServer):
    daemon_threads = True


def stdlib(tls: tuple[str, str] | None):
    server = make_server("127.0.0.1", 0, app, server_class=ThreadingWSGIServer, handler_class=QuietHandler)
    if tls:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(*tls)
        server.socket = context.wrap_socket(server.socket, server_side=True, do_handshake_on_connect=False)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server.server_port, server.shutdown


def ours(tls: tuple[str, str] | None):
    server = serve(app, "127.0.0.1", 0, name="bench", flag="--bench", tls=TLSFiles(*tls) if tls else None,
                   limits=Limits(connection_limit=1024))
    return server.port, server.stop


class Slowloris:
    def __init__(self, port: int, n: int, tls: bool) -> None:
        self.stop = threading.Event()
        self.sockets = []
        for _ in range(n):
            sock = socket.create_connection(("127.0.0.1", port))
            if tls:
                context = ssl.create_default_context()
                context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
                sock = context.wrap_socket(sock, server_hostname="localhost")
            self.sockets.append(sock)
        self.thread = threading.Thread(target=self.trickle, daemon=True)
        self.thread.start()

    def trickle(self) -> None:
        for byte in b"GET / HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"a" * 10_000:
            if self.stop.wait(0.1):
                return
            for sock in self.sockets:
                try:
                    sock.send(bytes([byte]))
                except OSError:
                    pass

    def close(self) -> None:
        self.stop.set()
        self.thread.join()
        for sock in self.sockets:
            sock.close()


def hey(url: str, seconds: int, clients: int, *extra: str) -> tuple[float, float, int]:
    """(requests/s, p99 ms, non-200 answers + errors)."""
    out = subprocess.run(["hey", "-z", f"{seconds}s", "-c", str(clients), "-t", "10", *extra, url],
                         capture_output=True, text=True).stdout
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", out)[1])
    p99 = re.search(r"99%+ in ([\d.]+) secs", out)
    ok = sum(int(n) for n in re.findall(r"\[200\]\s+(\d+) responses", out))
    total = sum(int(n) for n in re.findall(r"\[\d+\]\s+(\d+) responses", out))
    errors = sum(int(n) for n in re.findall(r"\[(\d+)\]\s+Get ", out)) + total - ok
    return rate, float(p99[1]) * 1000 if p99 else float("nan"), errors


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=5)
    parser.add_argument("--clients", type=int, default=16)
    args = parser.parse_args()
    tls = self_signed(Path(tempfile.mkdtemp()))
    servers = [("stdlib", stdlib, None), ("stdlib+ssl", stdlib, tls), ("waitress", ours, None),
               ("waitress+tls", ours, tls)]
    print(f"| server | keep-alive req/s (p99 ms) | new connection req/s (p99 ms) | 1 MiB MB/s | "
          f"keep-alive with 200 slowloris req/s (p99 ms, errors) |")
    print("|---|---:|---:|---:|---:|")
    for name, start, files in servers:
        port, stop = start(files)
        url = f"{'https' if files else 'http'}://localhost:{port}"
        keep = hey(url + "/", args.seconds, args.clients)
        fresh = hey(url + "/", args.seconds, args.clients, "-disable-keepalive")
        big = hey(url + "/big", args.seconds, 4)
        slow = Slowloris(port, 200, files is not None)
        time.sleep(1)
        loaded = hey(url + "/", args.seconds, args.clients)
        slow.close()
        stop()
        print(f"| {name} | {keep[0]:,.0f} ({keep[1]:.1f}) | {fresh[0]:,.0f} ({fresh[1]:.1f}) | "
              f"{big[0]:,.0f} | {loaded[0]:,.0f} ({loaded[1]:.1f}, {loaded[2]}) |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
