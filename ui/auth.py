"""Authentication for flowscope's HTTP faces — the UI and the JSON API share it: a bearer token or HTTP
basic auth, compared in constant time, checked before every request.

Both are read-only, but they show every pod's DNS names and URLs: on loopback they may run open;
anywhere else `check_address` refuses to start without authentication (the UI accepts --insecure).

The JSON API takes credentials only in the Authorization header. The UI also takes `?token=T` once: it
answers with a redirect to the same page without the token (so it leaves the address bar and the
history) and a session cookie holding a random session id — never the token itself — that is HttpOnly,
SameSite=Strict, and Secure when the UI serves TLS.
"""

from __future__ import annotations

import base64
import dataclasses
import hmac
import ipaddress
import secrets
import socket
import threading
import time
import urllib.parse
from typing import Callable

from common.errors import UserError

COOKIE = "flowscope_session"
MIN_TOKEN = 16
SESSION_TTL_S = 12 * 3600


class UIConfigError(UserError):
    """Bad address/authentication settings of the UI or the JSON API; the message names the option."""


@dataclasses.dataclass(frozen=True)
class Auth:
    token: str = ""
    basic_user: str = ""
    basic_password: str = ""

    @classmethod
    def parse(cls, token: str | None = None, basic: str | None = None, *,
              token_from: str = "--auth-token-file", basic_from: str = "--basic-auth-file") -> "Auth | None":
        """From a token or "user:password" (at most one); None when neither is given. `token_from` and
        `basic_from` say where each came from, for the error message."""
        if token and basic:
            raise UIConfigError(f"{token_from} and {basic_from}: expected one of them, not both")
        if token is not None:
            if len(token) < MIN_TOKEN:
                raise UIConfigError(f"{token_from}: expected a token of at least {MIN_TOKEN} characters "
                                    "(e.g. `openssl rand -hex 24`)")
            return cls(token=token)
        if basic is not None:
            user, sep, password = basic.partition(":")
            if not sep or not user or not password:
                raise UIConfigError(f"{basic_from}: expected user:password")
            return cls(basic_user=user, basic_password=password)
        return None

    def allows_header(self, authorization: str) -> bool:
        """Whether an Authorization header value carries these credentials."""
        if self.token:
            offered = authorization[7:] if authorization.startswith("Bearer ") else ""
            return hmac.compare_digest(offered.encode(), self.token.encode())
        if not authorization.startswith("Basic "):
            return False
        try:
            user, _, password = base64.b64decode(authorization[6:], validate=True).decode().partition(":")
        except (ValueError, UnicodeDecodeError):
            return False
        # `&`, not `and`: both comparisons always run, so the time does not tell which one failed
        return (hmac.compare_digest(user.encode(), self.basic_user.encode())
                & hmac.compare_digest(password.encode(), self.basic_password.encode()))

    def offered_token(self, value: str) -> bool:
        """Whether a token given outside the header (the UI's ?token=) is this one."""
        return bool(self.token) and hmac.compare_digest(value.encode(), self.token.encode())

    def challenge(self) -> dict[str, str]:
        """Headers of a 401: basic auth makes the browser prompt; a token has no prompt."""
        return {"WWW-Authenticate": 'Bearer realm="flowscope"' if self.token else 'Basic realm="flowscope"'}


class Sessions:
    """Session ids handed out in exchange for the token: random, in memory (a restart logs everyone
    out), expiring after `ttl_s`, at most `capacity` of them (the oldest go first)."""

    def __init__(self, ttl_s: float = SESSION_TTL_S, capacity: int = 10_000,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.ttl_s, self.capacity, self.clock = ttl_s, capacity, clock
        self._expiry: dict[str, float] = {}
        self._lock = threading.Lock()

    def create(self) -> str:
        session = secrets.token_urlsafe(32)
        with self._lock:
            while len(self._expiry) >= self.capacity:
                del self._expiry[next(iter(self._expiry))]
            self._expiry[session] = self.clock() + self.ttl_s
        return session

    def valid(self, session: str) -> bool:
        # A dict lookup, not a constant-time compare: the ids are 256 random bits, there is no prefix
        # to learn from timing.
        with self._lock:
            expiry = self._expiry.get(session)
            if expiry is not None and expiry < self.clock():
                del self._expiry[session]
                expiry = None
        return expiry is not None


def install(server, auth: Auth, *, secure_cookie: bool, sessions: Sessions | None = None,
            open_paths: tuple[str, ...] = ()) -> Sessions:
    """Guards every route of a Flask `server` (the Dash app's) with `auth` but `open_paths` (a health
    check that tells nothing); returns the session table."""
    import flask

    sessions = sessions or Sessions()

    @server.before_request
    def _check():
        request = flask.request
        if request.path in open_paths or auth.allows_header(request.headers.get("Authorization", "")):
            return None
        if auth.token and sessions.valid(request.cookies.get(COOKIE, "")):
            return None
        if auth.offered_token(request.args.get("token", "")):
            rest = urllib.parse.urlencode([(k, v) for k, v in request.args.items(multi=True) if k != "token"])
            response = flask.redirect(request.path + (f"?{rest}" if rest else ""), 303)
            response.set_cookie(COOKIE, sessions.create(), max_age=int(sessions.ttl_s), path="/",
                                httponly=True, secure=secure_cookie, samesite="Strict")
            return response
        return flask.Response("authentication required\n", 401, auth.challenge())

    return sessions


def parse_address(address: str, flag: str = "--address") -> tuple[str, int]:
    """"host:port" or "[v6]:port" -> (host, port); raises UIConfigError naming the address."""
    host, sep, port = address.rpartition(":")
    if not sep or not (port.isascii() and port.isdigit()) or not 0 <= int(port) <= 65535:
        raise UIConfigError(f"{flag} {address!r}: expected host:port (127.0.0.1:8050)")
    host = host.strip("[]") or "0.0.0.0"
    return host, int(port)


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        try:
            return all(ipaddress.ip_address(info[4][0]).is_loopback
                       for info in socket.getaddrinfo(host, None))
        except (socket.gaierror, ValueError):
            return False


def check_address(host: str, auth: Auth | None, insecure: bool, *, flag: str = "--address",
                  expected: str = "--auth-token-file, $FLOWSCOPE_UI_TOKEN or --basic-auth-file "
                                  "(or --insecure to serve the flows to anyone who can connect)") -> None:
    """Refuses a non-loopback address without authentication unless `insecure`."""
    if not is_loopback(host) and auth is None and not insecure:
        raise UIConfigError(f"{flag} {host}: not a loopback address; expected {expected}")
