"""A small dual-stack HTTP service for lab pods: a few JSON paths, a 404 and a 500, so that flows and
HTTP metrics have every kind of answer to show.

    python -m lab.apps.httpd --port 8080 [--name backend]
"""

from __future__ import annotations

import argparse
import json
import socket
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

ROUTES = {
    "/": (200, {"status": "ok"}),
    "/healthz": (200, {"status": "ok"}),
    "/api/users": (200, {"users": ["ada", "grace", "linus"]}),
    "/api/orders": (200, {"orders": [{"id": 1, "total": 42}]}),
    "/api/error": (500, {"error": "internal"}),
}


class Handler(BaseHTTPRequestHandler):
    server_version = "flowscope-lab"
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        code, body = ROUTES.get(self.path.split("?", 1)[0], (404, {"error": "not found"}))
        data = json.dumps({**body, "served_by": self.server.name}).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_POST = do_GET

    def log_message(self, format: str, *args: object) -> None:
        pass  # traffic is observed by flowscope, not logged here


class DualStackServer(ThreadingHTTPServer):
    address_family = socket.AF_INET6
    daemon_threads = True
    name = ""

    def server_bind(self) -> None:
        self.socket.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        super().server_bind()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=8080)
    parser.add_argument("--name", default=socket.gethostname())
    args = parser.parse_args()
    server = DualStackServer(("::", args.port), Handler)
    server.name = args.name
    server.serve_forever()


if __name__ == "__main__":
    main()
