"""TLS and mutual TLS for both sides of the relay: clients -> relay (server) and relay -> collectors
(client). Certificates are checked when they are loaded, so a bad or expired one is reported by file
name and reason at start-up instead of as an opaque handshake failure later; a failed handshake with a
collector is diagnosed with the standard library's verifier, which says why the peer was refused.
"""

from __future__ import annotations

import datetime
import socket
import ssl
from dataclasses import dataclass

import grpc
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from flowscope.errors import UserError


class TLSError(UserError):
    """A certificate or key that cannot be used; the message names the file and the reason."""


@dataclass(frozen=True)
class TLSFiles:
    """Paths of one side's TLS material.

    Server side: cert+key are served; `ca` (if set) verifies client certificates, and with
    `require_client_cert` a client without one is refused (mutual TLS).
    Client side: `ca` verifies the server; cert+key (if set) are presented for mutual TLS;
    `server_name` overrides the name checked in the server's certificate.
    """

    cert: str | None = None
    key: str | None = None
    ca: str | None = None
    server_name: str | None = None
    require_client_cert: bool = False


def _read(path: str, what: str) -> bytes:
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError as err:
        raise TLSError(f"{what} {path}: cannot read ({err.strerror})") from None


def _load_certs(path: str, what: str) -> tuple[bytes, list[x509.Certificate]]:
    data = _read(path, what)
    try:
        certs = x509.load_pem_x509_certificates(data)
    except ValueError:
        raise TLSError(f"{what} {path}: not a PEM certificate") from None
    now = datetime.datetime.now(datetime.timezone.utc)
    for cert in certs:
        subject = cert.subject.rfc4514_string() or "(no subject)"
        if cert.not_valid_after_utc < now:
            raise TLSError(f"{what} {path}: certificate {subject} expired on "
                           f"{cert.not_valid_after_utc:%Y-%m-%d %H:%M:%S} UTC")
        if cert.not_valid_before_utc > now:
            raise TLSError(f"{what} {path}: certificate {subject} is not valid before "
                           f"{cert.not_valid_before_utc:%Y-%m-%d %H:%M:%S} UTC")
    return data, certs


def _load_key_pair(cert_path: str, key_path: str, what: str) -> tuple[bytes, bytes]:
    cert_pem, certs = _load_certs(cert_path, f"{what} certificate")
    key_pem = _read(key_path, f"{what} key")
    try:
        key = serialization.load_pem_private_key(key_pem, password=None)
    except (ValueError, TypeError):
        raise TLSError(f"{what} key {key_path}: not an unencrypted PEM private key") from None
    if not isinstance(key, (rsa.RSAPrivateKey, ec.EllipticCurvePrivateKey)):
        raise TLSError(f"{what} key {key_path}: expected an RSA or EC private key")
    if key.public_key().public_numbers() != certs[0].public_key().public_numbers():
        raise TLSError(f"{what} key {key_path} does not belong to certificate {cert_path}")
    return cert_pem, key_pem


def server_credentials(files: TLSFiles) -> grpc.ServerCredentials:
    """Credentials for a gRPC server port; raises TLSError naming a bad file."""
    if not files.cert or not files.key:
        raise TLSError("server TLS needs both a certificate and a key (--tls-cert, --tls-key)")
    cert_pem, key_pem = _load_key_pair(files.cert, files.key, "server")
    ca_pem = _load_certs(files.ca, "client CA")[0] if files.ca else None
    if files.require_client_cert and ca_pem is None:
        raise TLSError("mutual TLS needs a CA to verify client certificates (--tls-client-ca)")
    return grpc.ssl_server_credentials([(key_pem, cert_pem)], root_certificates=ca_pem,
                                       require_client_auth=files.require_client_cert)


def channel_credentials(files: TLSFiles) -> grpc.ChannelCredentials:
    """Credentials for a channel to a TLS server; raises TLSError naming a bad file."""
    ca_pem = _load_certs(files.ca, "CA")[0] if files.ca else None
    cert_pem = key_pem = None
    if files.cert or files.key:
        if not (files.cert and files.key):
            raise TLSError("a client certificate needs its key and the key its certificate")
        cert_pem, key_pem = _load_key_pair(files.cert, files.key, "client")
    return grpc.ssl_channel_credentials(root_certificates=ca_pem, private_key=key_pem,
                                        certificate_chain=cert_pem)


def secure_channel(address: str, files: TLSFiles | None,
                   options: list[tuple[str, object]] | None = None) -> grpc.Channel:
    """A channel to `address`, plaintext when `files` is None."""
    options = list(options or [])
    if files is None:
        return grpc.insecure_channel(address, options=options)
    if files.server_name:
        options.append(("grpc.ssl_target_name_override", files.server_name))
    return grpc.secure_channel(address, channel_credentials(files), options=options)


def diagnose_handshake(address: str, files: TLSFiles, timeout: float = 3.0) -> str:
    """Why a TLS handshake with `address` fails, in words ("certificate has expired", ...).

    gRPC reports only that the connection failed; Python's ssl module verifies the same way and says
    which check refused the peer. Returns "" when the handshake succeeds.
    """
    host, _, port = address.rpartition(":")
    host = host.strip("[]") or "localhost"
    context = ssl.create_default_context(cafile=files.ca) if files.ca else ssl.create_default_context()
    if files.cert and files.key:
        context.load_cert_chain(files.cert, files.key)
    try:
        with socket.create_connection((host, int(port)), timeout=timeout) as sock:
            with context.wrap_socket(sock, server_hostname=files.server_name or host) as tls:
                # TLS 1.3 reports a refused client certificate only on the first read.
                tls.settimeout(0.3)
                try:
                    tls.recv(1)
                except (TimeoutError, socket.timeout):
                    pass
    except ssl.SSLCertVerificationError as err:
        return f"server certificate refused: {err.verify_message}"
    except ssl.SSLError as err:
        reason = err.reason or str(err)
        return f"TLS handshake failed: {reason.lower().replace('_', ' ')}"
    except OSError as err:
        return f"cannot connect: {err.strerror or err}"
    return ""

