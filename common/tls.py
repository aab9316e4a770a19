"""TLS and mutual TLS for the Observer API, server side (collector, relay) and client side (CLI, relay).

Certificates are checked when loaded, so a missing, unreadable, malformed, expired or mismatched file
is reported by path and reason at start-up rather than as an opaque handshake failure later.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass

import grpc
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from common.errors import UserError


class TLSError(UserError):
    """A certificate or key that cannot be used; names the file and why."""


@dataclass(frozen=True)
class TLSConfig:
    """Server side: `cert`/`key` are served; with `client_ca`, clients must present a certificate
    signed by it (mutual TLS)."""

    cert: str
    key: str
    client_ca: str | None = None


@dataclass(frozen=True)
class ClientTLS:
    """Client side: `ca` verifies the server (system roots if None); `cert`/`key` for mutual TLS;
    `server_name` overrides the name expected in the server's certificate."""

    ca: str | None = None
    cert: str | None = None
    key: str | None = None
    server_name: str | None = None


def _read(path: str, what: str) -> bytes:
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError as err:
        raise TLSError(f"{what} {path}: cannot read ({err.strerror})") from None


def load_certificates(path: str, what: str) -> tuple[bytes, list[x509.Certificate]]:
    pem = _read(path, what)
    try:
        certs = x509.load_pem_x509_certificates(pem)
    except ValueError:
        raise TLSError(f"{what} {path}: not a PEM certificate") from None
    now = datetime.datetime.now(datetime.timezone.utc)
    for cert in certs:
        if cert.not_valid_after_utc < now:
            raise TLSError(f"{what} {path}: certificate {cert.subject.rfc4514_string()} expired on "
                           f"{cert.not_valid_after_utc:%Y-%m-%d %H:%M} UTC")
        if cert.not_valid_before_utc > now:
            raise TLSError(f"{what} {path}: certificate {cert.subject.rfc4514_string()} is not valid "
                           f"before {cert.not_valid_before_utc:%Y-%m-%d %H:%M} UTC")
    return pem, certs


def load_key_pair(cert_path: str, key_path: str, side: str) -> tuple[bytes, bytes]:
    """(key PEM, certificate chain PEM), checked to belong together."""
    cert_pem, certs = load_certificates(cert_path, f"{side} certificate")
    key_pem = _read(key_path, f"{side} key")
    try:
        key = serialization.load_pem_private_key(key_pem, password=None)
    except (ValueError, TypeError):
        raise TLSError(f"{side} key {key_path}: not an unencrypted PEM private key") from None
    spki = serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    if key.public_key().public_bytes(*spki) != certs[0].public_key().public_bytes(*spki):
        raise TLSError(f"{side} key {key_path} does not belong to certificate {cert_path}")
    return key_pem, cert_pem


def server_credentials(tls: TLSConfig) -> grpc.ServerCredentials:
    pair = load_key_pair(tls.cert, tls.key, "server")
    ca = load_certificates(tls.client_ca, "client CA")[0] if tls.client_ca else None
    return grpc.ssl_server_credentials([pair], root_certificates=ca, require_client_auth=ca is not None)


def channel(address: str, tls: ClientTLS | None = None,
            options: list[tuple[str, object]] | None = None) -> grpc.Channel:
    """A channel to `address` ("host:port" or "unix:///path"); plaintext when `tls` is None."""
    options = list(options or [])
    if tls is None:
        return grpc.insecure_channel(address, options=options)
    ca = load_certificates(tls.ca, "CA")[0] if tls.ca else None
    key = chain = None
    if tls.cert or tls.key:
        if not (tls.cert and tls.key):
            raise TLSError("a client certificate needs its key, and a key its certificate")
        key, chain = load_key_pair(tls.cert, tls.key, "client")
    if tls.server_name:
        options.append(("grpc.ssl_target_name_override", tls.server_name))
    creds = grpc.ssl_channel_credentials(root_certificates=ca, private_key=key, certificate_chain=chain)
    return grpc.secure_channel(address, creds, options=options)
