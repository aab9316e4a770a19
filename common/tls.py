"""TLS and mutual TLS for every gRPC hop: server side (collector, relay, `flowscope up`) and client side
(CLI, the relay towards collectors), with Hubble's flag names.

Certificates are checked when loaded, so a missing, unreadable, malformed, expired or mismatched file
is reported by path and reason rather than as an opaque handshake failure later. Servers re-read their
files when they change on disk (cert-manager renews them in place): gRPC asks for the configuration on
every new connection, existing connections keep theirs. Clients read the files for each new channel.
gRPC says only "failed to connect" when a handshake fails, so `diagnose_handshake` replays it with the
standard library's verifier, which names the check that refused.
"""

from __future__ import annotations

import argparse
import datetime
import ipaddress
import logging
import os
import select
import socket
import ssl
import threading
from dataclasses import dataclass
from typing import Sequence

import grpc
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import ExtendedKeyUsageOID

from common.errors import UserError

log = logging.getLogger(__name__)


class TLSError(UserError):
    """A certificate or key that cannot be used, or a peer that refused ours; names the file and why."""


def _paths(value: str | Sequence[str] | None) -> tuple[str, ...]:
    """One path, a sequence, or comma lists (Hubble's `--tls-client-ca-files a.crt,b.crt`) -> paths."""
    if not value:
        return ()
    items = [value] if isinstance(value, str) else list(value)
    return tuple(p.strip() for item in items for p in item.split(",") if p.strip())


@dataclass(frozen=True)
class TLSConfig:
    """Server side: `cert`/`key` are served; with `client_ca` (one or more CA files), clients must
    present a certificate signed by one of them (mutual TLS)."""

    cert: str
    key: str
    client_ca: str | Sequence[str] | None = None

    @property
    def client_cas(self) -> tuple[str, ...]:
        return _paths(self.client_ca)


def describe(tls: TLSConfig | None) -> str:
    """" (mutual TLS)", " (TLS)" or "" for a listener's log line."""
    return "" if tls is None else " (mutual TLS)" if tls.client_cas else " (TLS)"


@dataclass(frozen=True)
class ClientTLS:
    """Client side: `ca` (one or more files) verifies the server (system roots if None); `cert`/`key`
    for mutual TLS; `server_name` overrides the name expected in the server's certificate."""

    ca: str | Sequence[str] | None = None
    cert: str | None = None
    key: str | None = None
    server_name: str | None = None
    allow_insecure: bool = False  # hubble's --tls-allow-insecure: encrypt, but do not verify the server

    @property
    def cas(self) -> tuple[str, ...]:
        return _paths(self.ca)


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


def load_bundle(paths: Sequence[str], what: str) -> bytes | None:
    """The PEM certificates of several CA files, concatenated (None for no files)."""
    if not paths:
        return None
    return b"\n".join(load_certificates(path, what)[0].strip() for path in paths) + b"\n"


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


# --- servers -------------------------------------------------------------------------------------

def load_server_files(tls: TLSConfig) -> tuple[tuple[bytes, bytes], bytes | None]:
    """((key, chain), client CA bundle or None), every file checked; raises TLSError naming the bad one."""
    return load_key_pair(tls.cert, tls.key, "server"), load_bundle(tls.client_cas, "client CA")


class CertificateReloader:
    """gRPC's certificate-configuration fetcher: called on every new connection, it re-reads the files
    when their identity (inode, size, mtime) changed and keeps serving the last good set when the new
    files do not load (half-written during a rotation, expired, key not matching): a warning once per
    change, never a refused start of service."""

    def __init__(self, tls: TLSConfig) -> None:
        self.tls = tls
        self._files = (tls.cert, tls.key, *tls.client_cas)
        self._lock = threading.Lock()
        self._signature = self._stat()
        self.config = self._load()  # the first load raises: a server does not start on bad files
        self.reloads = 0

    def _stat(self) -> tuple:
        signature = []
        for path in self._files:
            try:
                st = os.stat(path)  # follows symlinks: Kubernetes swaps a Secret volume's ..data link
            except OSError:
                signature.append(None)
                continue
            signature.append((st.st_ino, st.st_size, st.st_mtime_ns))
        return tuple(signature)

    def _load(self) -> grpc.ServerCertificateConfiguration:
        pair, client_cas = load_server_files(self.tls)
        return grpc.ssl_server_certificate_configuration([pair], root_certificates=client_cas)

    def __call__(self) -> grpc.ServerCertificateConfiguration | None:
        """None means "no change" to gRPC."""
        with self._lock:
            signature = self._stat()
            if signature == self._signature:
                return None
            self._signature = signature
            try:
                self.config = self._load()
            except TLSError as err:
                log.warning("TLS: keeping the previous certificates: %s", err)
                return None
            self.reloads += 1
            log.info("TLS: certificates reloaded from %s", self.tls.cert)
            return self.config


def server_credentials(tls: TLSConfig) -> grpc.ServerCredentials:
    """Credentials that follow the files on disk; mutual TLS (a client certificate is required) when
    the config names client CAs."""
    reloader = CertificateReloader(tls)
    return grpc.dynamic_ssl_server_credentials(reloader.config, reloader,
                                               require_client_authentication=bool(tls.client_cas))


def is_loopback(address: str) -> bool:
    """Whether a listen address ("host:port", ":port", "unix:..") is reachable only from this machine."""
    if address.startswith("unix:"):
        return True
    host = address.rpartition(":")[0].strip("[]")
    if host in ("localhost", "ip6-localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # "" / 0.0.0.0 are not loopback; neither is a host name


def require_tls_off_loopback(address: str | None, tls: TLSConfig | None, disabled: bool, flag_hint: str) -> None:
    """Secure by default: a TCP listener beyond loopback serves TLS unless plaintext was asked for by
    name (Hubble's `--disable-server-tls`); every flow of a node (or a cluster) is behind it."""
    if not address or tls is not None or disabled or is_loopback(address):
        return
    raise UserError(f"{address}: will not serve flows in plaintext beyond loopback; give {flag_hint} "
                    "(`flowscope certs generate DIR` makes them), listen on localhost, or pass "
                    "--disable-server-tls")


# --- clients -------------------------------------------------------------------------------------

def channel(address: str, tls: ClientTLS | None = None,
            options: list[tuple[str, object]] | None = None) -> grpc.Channel:
    """A channel to `address` ("host:port" or "unix:///path"); plaintext when `tls` is None. The
    files are read now: a new channel after a rotation uses the new certificates."""
    options = list(options or [])
    if tls is None:
        return grpc.insecure_channel(address, options=options)
    if tls.allow_insecure:
        return grpc.insecure_channel(UnverifiedTunnel(address, tls).address, options=options)
    ca = load_bundle(tls.cas, "CA")
    key = chain = None
    if tls.cert or tls.key:
        if not (tls.cert and tls.key):
            raise TLSError("a client certificate needs its key, and a key its certificate")
        key, chain = load_key_pair(tls.cert, tls.key, "client")
    if tls.server_name:
        options.append(("grpc.ssl_target_name_override", tls.server_name))
    creds = grpc.ssl_channel_credentials(root_certificates=ca, private_key=key, certificate_chain=chain)
    return grpc.secure_channel(address, creds, options=options)


class UnverifiedTunnel:
    """--tls-allow-insecure for a CLI: gRPC's Python API cannot skip verifying the server, so the
    channel speaks plaintext to a loopback port of this process, and each connection is carried on to
    the server over TLS that verifies nothing (a client certificate is still presented). Lives as long
    as the process."""

    def __init__(self, address: str, tls: ClientTLS) -> None:
        self._target = _split_host_port(address)
        self._server_name = tls.server_name or self._target[0]
        self._context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        self._context.check_hostname, self._context.verify_mode = False, ssl.CERT_NONE
        self._context.set_alpn_protocols(["h2"])
        if tls.cert or tls.key:
            load_key_pair(tls.cert or "", tls.key or "", "client")  # named errors, as channel() gives
            self._context.load_cert_chain(tls.cert, tls.key)
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.address = f"127.0.0.1:{self._listener.getsockname()[1]}"
        threading.Thread(target=self._accept, name="tls-tunnel", daemon=True).start()

    def _accept(self) -> None:
        while True:
            client, _ = self._listener.accept()
            threading.Thread(target=self._carry, args=(client,), name="tls-tunnel", daemon=True).start()

    def _carry(self, client: socket.socket) -> None:
        # One thread reads and writes both ends: an SSL object is not safe across threads.
        try:
            upstream = self._context.wrap_socket(socket.create_connection(self._target, timeout=10),
                                                 server_hostname=self._server_name)
        except OSError:
            client.close()
            return
        upstream.settimeout(None)
        with client, upstream:
            try:
                while True:
                    ready = [upstream] if upstream.pending() else select.select([client, upstream], [], [])[0]
                    for source in ready:
                        data = source.recv(65536)
                        if not data:
                            return
                        (upstream if source is client else client).sendall(data)
            except OSError:
                return


def _split_host_port(address: str) -> tuple[str, int]:
    host, _, port = address.rpartition(":")
    return host.strip("[]") or "localhost", int(port)


_UNREACHABLE = "cannot connect: "

def _refused_client_certificate(files: ClientTLS) -> str:
    """Why a server that verifies clients closed the handshake: gRPC servers send no TLS alert, so
    the reason is read from the certificate we offered."""
    if not (files.cert and files.key):
        return "the server requires a client certificate (--tls-client-cert-file/--tls-client-key-file)"
    try:
        with open(files.cert, "rb") as f:
            cert = x509.load_pem_x509_certificates(f.read())[0]
    except (OSError, ValueError):
        return "the server refused the client certificate"
    if cert.not_valid_after_utc < datetime.datetime.now(datetime.timezone.utc):
        return f"the server refused the client certificate: it expired on {cert.not_valid_after_utc:%Y-%m-%d %H:%M} UTC"
    try:
        usages = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    except x509.ExtensionNotFound:
        usages = [ExtendedKeyUsageOID.CLIENT_AUTH]
    if ExtendedKeyUsageOID.CLIENT_AUTH not in usages:
        return (f"the server refused the client certificate {cert.subject.rfc4514_string()}: it is not for "
                "clients (its extended key usage lacks clientAuth)")
    return (f"the server refused the client certificate {cert.subject.rfc4514_string()}: it does not trust "
            f"its issuer {cert.issuer.rfc4514_string()}")


def diagnose_handshake(address: str, files: ClientTLS | None, timeout: float = 3.0) -> str:
    """Why a connection to `address` fails, in words ("server certificate refused: certificate has
    expired", ...); "" when a handshake succeeds. `files` None: the client speaks plaintext, so the
    question is whether the server wants TLS.

    gRPC reports only that the connection failed; Python's ssl module verifies the same way and says
    which check refused the server's certificate. The replay speaks TLS 1.2, where a server refuses a
    client certificate inside the handshake rather than after it.
    """
    if address.startswith("unix:"):
        return ""
    try:
        host, port = _split_host_port(address)
    except ValueError:
        return ""
    context = ssl.create_default_context()
    context.set_alpn_protocols(["h2"])
    if files is None or files.allow_insecure:
        context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
    if files is not None:
        context.maximum_version = ssl.TLSVersion.TLSv1_2
        for ca in files.cas:
            context.load_verify_locations(ca)
        if files.cert and files.key:
            context.load_cert_chain(files.cert, files.key)
    try:
        with socket.create_connection((host, port), timeout=timeout) as sock:
            server_name = (files.server_name if files else None) or host
            with context.wrap_socket(sock, server_hostname=server_name):
                pass
    except ssl.SSLCertVerificationError as err:
        return f"server certificate refused: {err.verify_message}"
    except (ssl.SSLZeroReturnError, ssl.SSLEOFError, ConnectionResetError):
        return "" if files is None else _refused_client_certificate(files)
    except ssl.SSLError as err:
        if files is None:
            return ""  # not TLS either: the failure is elsewhere
        reason = (err.reason or str(err)).lower().replace("_", " ")
        if "wrong version number" in reason or "record layer failure" in reason:
            return "the server does not speak TLS (plaintext?)"
        return f"TLS handshake refused: {reason}"
    except OSError as err:
        return f"{_UNREACHABLE}{err.strerror or err}"
    return "the server speaks TLS: connect with TLS (--tls or tls://)" if files is None else ""


def connect(address: str, tls: ClientTLS | None, timeout: float) -> grpc.Channel:
    """A ready channel, or a one-line TLSError/UserError saying why not (for the CLI's clients). A
    failed first attempt is explained at once rather than retried until the timeout."""
    ch = channel(address, tls)
    settled = threading.Event()
    outcome: list[grpc.ChannelConnectivity] = []

    def watch(state: grpc.ChannelConnectivity) -> None:
        if state in (grpc.ChannelConnectivity.READY, grpc.ChannelConnectivity.TRANSIENT_FAILURE):
            outcome.append(state)
            settled.set()

    ch.subscribe(watch, try_to_connect=True)
    settled.wait(timeout)
    ch.unsubscribe(watch)
    if outcome and outcome[0] == grpc.ChannelConnectivity.READY:
        return ch
    ch.close()
    why = diagnose_handshake(address, tls)
    if why and not why.startswith(_UNREACHABLE):
        raise TLSError(f"{address}: {why}")
    how = f" ({why[len(_UNREACHABLE):].lower()})" if why else "" if outcome else f" within {timeout:g}s"
    raise UserError(f"cannot connect to {address}{how}: is the collector (:4244) or relay (:4245) running there?")


# --- flags (Hubble's names) ----------------------------------------------------------------------

def add_server_arguments(group: argparse._ArgumentGroup, prefix: str = "tls", role: str = "") -> None:
    """`--{prefix}-cert-file`, `--{prefix}-key-file`, `--{prefix}-client-ca-files` (repeatable, comma
    lists; enables mutual TLS) and `--disable-server-tls`. The collector uses Hubble's `tls-`, the relay
    Hubble Relay's `tls-relay-server-` / `tls-relay-client-ca-files`."""
    group.add_argument(f"--{prefix}-cert-file", dest="tls_cert_file", metavar="FILE",
                       help=f"serve TLS{role} with this certificate (PEM); re-read when it changes")
    group.add_argument(f"--{prefix}-key-file", dest="tls_key_file", metavar="FILE",
                       help="private key of the certificate (PEM)")
    ca_flag = "--tls-relay-client-ca-files" if prefix == "tls-relay-server" else f"--{prefix}-client-ca-files"
    group.add_argument(ca_flag, dest="tls_client_ca_files", action="append", default=[], metavar="FILES",
                       help="CA(s) whose client certificates are accepted; enables mutual TLS "
                            "(repeatable or comma-separated)")
    group.add_argument("--disable-server-tls", action="store_true",
                       help="serve plaintext beyond loopback (flows readable by anyone who reaches the port)")


def server_tls_from_args(args: argparse.Namespace, flag: str = "--tls-cert-file") -> TLSConfig | None:
    cert, key, cas = args.tls_cert_file, args.tls_key_file, _paths(args.tls_client_ca_files)
    if not (cert or key or cas):
        return None
    if args.disable_server_tls:
        raise UserError("--disable-server-tls contradicts the TLS certificate flags: give one or the other")
    if not (cert and key):
        key_flag = flag.replace("cert-file", "key-file")
        raise UserError(f"server TLS needs both {flag} and {key_flag}")
    return TLSConfig(cert=cert, key=key, client_ca=cas or None)


def listener_tls(args: argparse.Namespace, address: str, flag: str = "--tls-cert-file") -> TLSConfig | None:
    """A listener's TLS from the server flags, its files checked, and plaintext refused beyond
    loopback unless --disable-server-tls: called before anything else starts."""
    tls = server_tls_from_args(args, flag)
    require_tls_off_loopback(address, tls, args.disable_server_tls,
                             f"{flag} and {flag.replace('cert-file', 'key-file')}")
    if tls is not None:
        load_server_files(tls)
    return tls


def add_client_arguments(group: argparse._ArgumentGroup) -> None:
    """`hubble observe`'s client flags: --tls, --tls-ca-cert-files, --tls-client-cert-file,
    --tls-client-key-file, --tls-server-name."""
    group.add_argument("--tls", action="store_true", help="use TLS (also: --server tls://host:port)")
    group.add_argument("--tls-ca-cert-files", dest="tls_ca", action="append", default=[], metavar="FILES",
                       help="CA(s) to verify the server (default: system roots; repeatable or comma-separated)")
    group.add_argument("--tls-client-cert-file", dest="tls_cert", metavar="FILE", help="client certificate (mTLS)")
    group.add_argument("--tls-client-key-file", dest="tls_key", metavar="FILE", help="client key (mTLS)")
    group.add_argument("--tls-server-name", metavar="NAME", help="name expected in the server certificate")
    group.add_argument("--tls-allow-insecure", action="store_true",
                       help="encrypt but do not verify the server's certificate (testing only)")


def client_tls_from_args(args: argparse.Namespace, server: str) -> tuple[str, ClientTLS | None]:
    """(address, TLS or None) from --server ("tls://host:port" turns TLS on) and the client flags;
    giving any TLS file also turns it on."""
    address, use_tls = server, args.tls
    if address.startswith("tls://"):
        address, use_tls = address[len("tls://"):], True
    use_tls = use_tls or bool(args.tls_ca or args.tls_cert or args.tls_key or args.tls_server_name
                              or args.tls_allow_insecure)
    if not use_tls:
        return address, None
    return address, ClientTLS(ca=_paths(args.tls_ca) or None, cert=args.tls_cert, key=args.tls_key,
                              server_name=args.tls_server_name, allow_insecure=args.tls_allow_insecure)
