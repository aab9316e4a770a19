"""Serving flowscope's HTTP faces (the UI and the JSON API) with waitress, optionally over TLS.

Why waitress rather than gunicorn (or Werkzeug's development server, or the standard library's
ThreadingHTTPServer):
- it runs inside the calling process. `flowscope up` is the collector, the relay and an embedded chdb
  that only one process may open; a pre-forking server such as gunicorn cannot serve that store.
- one asyncore loop reads every request and only complete requests reach a bounded pool of threads,
  so a slow client (slowloris) holds a socket, not a thread; `Channel` also closes a connection whose
  request has not arrived completely within `Limits.request_timeout_s`.
- channel_timeout, max_request_body_size, max_request_header_size, connection_limit and threads bound
  what clients can take.
Waitress has no TLS of its own. `TLSChannel` runs Python's ssl record layer on memory BIOs inside
waitress's loop, so the handshake does not block either: a client that stalls mid-handshake holds no
thread. Certificates are re-read when their files change (cert-manager renews them in place).
"""

from __future__ import annotations

import dataclasses
import logging
import os
import socket
import ssl
import threading
import time

import waitress.server
from waitress import wasyncore
from waitress.channel import HTTPChannel

from common.errors import UserError

log = logging.getLogger(__name__)
MAX_CIPHERTEXT = 1 << 20  # encrypted bytes queued for a slow reader before we stop encrypting more


@dataclasses.dataclass(frozen=True)
class Limits:
    threads: int = 8  # requests handled at once; more wait in waitress's queue
    connection_limit: int = 256  # open connections; beyond it new ones wait in the listen backlog
    channel_timeout_s: int = 60  # an idle keep-alive connection is closed after this
    request_timeout_s: float = 15.0  # a request (headers and body) must arrive completely within this
    max_request_header_size: int = 64 << 10
    max_request_body_size: int = 1 << 20


class TLSFiles:
    """A certificate chain and key in PEM files; `context()` reloads them when either file changes."""

    def __init__(self, cert_file: str, key_file: str) -> None:
        self.cert_file, self.key_file = cert_file, key_file
        self._stamp: tuple | None = None
        self._context: ssl.SSLContext | None = None
        self._lock = threading.Lock()
        self.context()  # fail at start on a bad pair, naming the files

    def _load(self) -> ssl.SSLContext:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        try:
            context.load_cert_chain(self.cert_file, self.key_file)
        except (OSError, ssl.SSLError) as err:
            raise UserError(f"TLS certificate {self.cert_file} / key {self.key_file}: cannot load: "
                            f"{getattr(err, 'strerror', None) or err}") from None
        return context

    def context(self) -> ssl.SSLContext:
        stamp = tuple((s.st_mtime_ns, s.st_size, s.st_ino) for s in map(os.stat, (self.cert_file, self.key_file)))
        with self._lock:
            if stamp != self._stamp:
                try:
                    self._context = self._load()
                    self._stamp = stamp
                except UserError as err:
                    if self._context is None:
                        raise
                    log.warning("%s; still serving the previous certificate", err)  # a half-written renewal
            return self._context


class Channel(HTTPChannel):
    """waitress's channel, closing a connection whose request trickles in for too long (slowloris)."""

    request_started = 0.0

    def received(self, data: bytes) -> bool:
        now = time.monotonic()
        if self.request is None:
            self.request_started = now
        result = super().received(data)
        if self.request is not None and now - self.request_started > self.server.request_timeout_s:
            log.info("HTTP: closing the connection from %s: its request took over %ss", self.addr[0],
                     self.server.request_timeout_s)
            self.will_close = True
        return result


class TLSChannel(Channel):
    """TLS on memory BIOs: bytes from the socket go through the SSLObject before waitress parses them,
    and waitress's responses are encrypted on their way out. One lock serialises the SSLObject, which the
    loop thread (reads, flushes) and waitress's task threads (writes) both use."""

    def __init__(self, server, sock, addr, adj, map=None):
        self.incoming, self.outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
        self.tls = server.tls.context().wrap_bio(self.incoming, self.outgoing, server_side=True)
        self.tls_lock = threading.RLock()
        self.ciphertext = bytearray()
        self.closing = False
        super().__init__(server, sock, addr, adj, map)

    def handle_read(self) -> None:
        raw = wasyncore.dispatcher.recv(self, self.adj.recv_bytes)
        if not raw:
            self.connected = False
            return
        with self.tls_lock:
            self.incoming.write(raw)
            plain = []
            try:
                while True:
                    chunk = self.tls.read(self.adj.recv_bytes)
                    if not chunk:
                        break
                    plain.append(chunk)
            except ssl.SSLWantReadError:
                pass
            except ssl.SSLError as err:  # a bad handshake, plain HTTP on the TLS port, close_notify
                if not isinstance(err, ssl.SSLZeroReturnError):
                    log.info("TLS from %s: %s", self.addr[0], err.reason or err)
                self.flush_ciphertext()
                self.hard_close()
                return
            self.flush_ciphertext()
        if plain:
            self.last_activity = time.time()
            self.received(b"".join(plain))

    def send(self, data, do_close: bool = True) -> int:
        with self.tls_lock:
            if len(self.ciphertext) >= MAX_CIPHERTEXT and not self.flush_ciphertext():
                return 0
            try:
                sent = self.tls.write(data)
            except ssl.SSLError as err:
                log.info("TLS to %s: %s", self.addr[0], err.reason or err)
                self.hard_close()
                return 0
            self.flush_ciphertext()
            return sent

    def flush_ciphertext(self) -> bool:
        """Sends what the SSLObject produced; True when nothing is left queued."""
        with self.tls_lock:
            self.ciphertext += self.outgoing.read()
            if not self.ciphertext or self.socket is None:
                return True
            try:
                sent = self.socket.send(self.ciphertext)
            except BlockingIOError:
                return False
            except OSError:
                self.ciphertext.clear()
                self.hard_close()
                return True
            del self.ciphertext[:sent]
            return not self.ciphertext

    def writable(self) -> bool:
        return bool(self.ciphertext) or super().writable()

    def handle_write(self) -> None:
        if not self.flush_ciphertext():
            return
        if self.closing:
            self.hard_close()
            return
        super().handle_write()

    def handle_close(self) -> None:
        if self.ciphertext and self.connected:
            self.closing = True  # the end of the last response is still queued: close once it is sent
            return
        self.hard_close()

    def hard_close(self) -> None:
        if self.socket is not None:
            HTTPChannel.handle_close(self)


@dataclasses.dataclass
class HTTPServer:
    """A running server: `url`, `port`, `stop()`."""

    host: str
    port: int
    scheme: str
    server: object
    thread: threading.Thread

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.scheme}://{host}:{self.port}"

    def stop(self) -> None:
        """Stops accepting, closes every connection, and ends the worker threads. Idempotent."""
        if not self.thread.is_alive():
            return

        def close_all():
            for channel in list(self.server._map.values()):
                channel.close()
        self.server.trigger.pull_trigger(close_all)
        self.thread.join(10)
        self.server.task_dispatcher.shutdown(timeout=5)


def listen(host: str, port: int, flag: str) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        return socket.create_server((host, port), family=family, backlog=1024)
    except OSError as err:
        raise UserError(f"{flag} {host}:{port}: cannot listen: {err.strerror}") from None


def serve(app, host: str, port: int, *, name: str, flag: str, tls: TLSFiles | None = None,
          limits: Limits = Limits()) -> HTTPServer:
    """Serves the WSGI `app` on host:port (0 = a free port) from a daemon thread named `name`; `flag`
    names the address option in errors."""
    sock = listen(host, port, flag)
    server = waitress.server.create_server(
        app, sockets=[sock], threads=limits.threads, connection_limit=limits.connection_limit,
        channel_timeout=limits.channel_timeout_s, cleanup_interval=max(1, min(10, limits.channel_timeout_s)),
        max_request_header_size=limits.max_request_header_size,
        max_request_body_size=limits.max_request_body_size, asyncore_use_poll=True,  # select() stops at fd 1024
        url_scheme="https" if tls else "http", ident="flowscope", clear_untrusted_proxy_headers=True)
    # waitress warns on every request that waits for a thread: under load that is a line per request
    logging.getLogger("waitress.queue").setLevel(logging.ERROR)
    server.request_timeout_s = limits.request_timeout_s
    server.tls = tls
    server.channel_class = TLSChannel if tls else Channel
    thread = threading.Thread(target=server.run, name=name, daemon=True)
    thread.start()
    return HTTPServer(host=host, port=sock.getsockname()[1], scheme="https" if tls else "http",
                      server=server, thread=thread)
