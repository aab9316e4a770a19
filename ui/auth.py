"""Optional authentication for the UI: a bearer token or HTTP basic auth, checked before every request.

The UI is read-only. On loopback it may run open; anywhere else `check_address` refuses to start without
authentication unless the operator says --insecure.

Token: `Authorization: Bearer T`, or open `http://host:8050/?token=T` once — the UI then sets an
HttpOnly cookie so the page's own requests carry it. Basic: the browser's login prompt.
"""

from __future__ import annotations

import base64
import dataclasses
import hmac
import ipaddress
import socket

import flask

from common.errors import UserError

COOKIE = "flowscope_token"


class UIConfigError(UserError):
    """Bad --address/--auth-token/--basic-auth combination; the message names it."""


@dataclasses.dataclass(frozen=True)
class Auth:
    token: str = ""
    basic_user: str = ""
    basic_password: str = ""

    @classmethod
    def parse(cls, token: str | None = None, basic: str | None = None) -> "Auth | None":
        """From --auth-token T / --basic-auth user:pass (at most one); None when neither is given."""
        if token and basic:
            raise UIConfigError("--auth-token and --basic-auth: expected one of them, not both")
        if token is not None:
            if len(token) < 8:
                raise UIConfigError("--auth-token: expected at least 8 characters")
            return cls(token=token)
        if basic is not None:
            user, sep, password = basic.partition(":")
            if not sep or not user or not password:
                raise UIConfigError(f"--basic-auth {user or basic!r}:...: expected user:password")
            return cls(basic_user=user, basic_password=password)
        return None

    def allows(self, request: flask.Request) -> bool:
        header = request.headers.get("Authorization", "")
        if self.token:
            offered = (header[7:] if header.startswith("Bearer ") else
                       request.cookies.get(COOKIE) or request.args.get("token", ""))
            return hmac.compare_digest(offered.encode(), self.token.encode())
        if not header.startswith("Basic "):
            return False
        try:
            user, _, password = base64.b64decode(header[6:]).decode().partition(":")
        except (ValueError, UnicodeDecodeError):
            return False
        return (hmac.compare_digest(user.encode(), self.basic_user.encode())
                & hmac.compare_digest(password.encode(), self.basic_password.encode()))

    def install(self, server: flask.Flask) -> None:
        @server.before_request
        def _check():
            if not self.allows(flask.request):
                headers = {} if self.token else {"WWW-Authenticate": 'Basic realm="flowscope"'}
                return flask.Response("authentication required\n", 401, headers)
            return None

        if self.token:
            @server.after_request
            def _remember(response):
                if flask.request.args.get("token"):
                    response.set_cookie(COOKIE, self.token, httponly=True, samesite="Strict")
                return response


def parse_address(address: str) -> tuple[str, int]:
    """"host:port" or "[v6]:port" -> (host, port); raises UIConfigError naming the address."""
    host, sep, port = address.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise UIConfigError(f"--address {address!r}: expected host:port (127.0.0.1:8050)")
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


def check_address(host: str, auth: Auth | None, insecure: bool) -> None:
    """Refuses a non-loopback address without authentication unless `insecure`."""
    if not is_loopback(host) and auth is None and not insecure:
        raise UIConfigError(f"--address {host}: not a loopback address; expected --auth-token or "
                            "--basic-auth (or --insecure to serve the flows to anyone who can connect)")
