"""`flowscope certs generate DIR`: a CA and the certificates of every gRPC hop, for clusters without
cert-manager (like Cilium's certgen). deploy/k8s/components/cert-manager issues the same set.

Each certificate goes into its own directory as tls.crt, tls.key and ca.crt, the layout of a
Kubernetes TLS Secret (cert-manager writes the same keys), so
`kubectl create secret generic NAME --from-file=DIR/NAME` makes the Secret the manifests mount:

    ca.crt, ca.key            the CA (kept: running again reuses it and renews the others)
    collector-server/         the collectors' Observer API; DNS *.collector.flowscope.local and
                              collector.flowscope.local (the relay expects collector.flowscope.local)
    relay-server/             the relay's Observer API; relay.flowscope.local, *.relay.flowscope.local and
                              the in-cluster Service names of flowscope-relay
    relay-client/             the relay towards the collectors (mutual TLS)
    cli-client/               `flowscope observe` / `policy --server` towards the relay (mutual TLS)

Names are flowscope's own, in Hubble's style (Hubble's are *.<cluster>.hubble-grpc.cilium.io), under
.local so that they never collide with a public name a public CA could sign.
"""

from __future__ import annotations

import argparse
import datetime
import ipaddress
import os
import pathlib
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from common.errors import UserError
from flowscope.commands.arguments import positive

COLLECTOR_SERVER_NAME = "collector.flowscope.local"
RELAY_SERVER_NAME = "relay.flowscope.local"
RELAY_SERVICE_NAMES = ("flowscope-relay", "flowscope-relay.flowscope", "flowscope-relay.flowscope.svc",
                       "flowscope-relay.flowscope.svc.cluster.local")


@dataclass(frozen=True)
class Leaf:
    """One certificate of the set: its directory, common name, DNS names and use."""

    name: str
    common_name: str
    dns_names: tuple[str, ...]
    server: bool  # serverAuth, else clientAuth


LEAVES = (
    Leaf("collector-server", COLLECTOR_SERVER_NAME, (COLLECTOR_SERVER_NAME, f"*.{COLLECTOR_SERVER_NAME}"), True),
    Leaf("relay-server", RELAY_SERVER_NAME, (RELAY_SERVER_NAME, f"*.{RELAY_SERVER_NAME}", *RELAY_SERVICE_NAMES),
         True),
    Leaf("relay-client", "relay-client.flowscope.local", ("relay-client.flowscope.local",), False),
    Leaf("cli-client", "cli-client.flowscope.local", ("cli-client.flowscope.local",), False),
)


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "flowscope"),
                      x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _subject_alt_names(names: tuple[str, ...]) -> list[x509.GeneralName]:
    out: list[x509.GeneralName] = []
    for name in names:
        try:
            out.append(x509.IPAddress(ipaddress.ip_address(name)))
        except ValueError:
            out.append(x509.DNSName(name))
    return out


def issue(common_name: str, dns_names: tuple[str, ...] = (), issuer: tuple[x509.Certificate, object] | None = None,
          not_before_days: float = -1 / 24, valid_days: float = 365, server: bool = True,
          ) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    """A certificate and its new P-256 key: a self-signed CA when `issuer` is None, else a leaf for
    servers (serverAuth) or clients (clientAuth) signed by issuer=(cert, key). Valid from
    `not_before_days` (an hour ago: clocks drift) for `valid_days`; negative values make expired ones."""
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.timezone.utc)
    start = now + datetime.timedelta(days=not_before_days)
    is_ca = issuer is None
    builder = (x509.CertificateBuilder()
               .subject_name(_name(common_name))
               .issuer_name(_name(common_name) if is_ca else issuer[0].subject)
               .public_key(key.public_key())
               .serial_number(x509.random_serial_number())
               .not_valid_before(start)
               .not_valid_after(start + datetime.timedelta(days=valid_days))
               .add_extension(x509.BasicConstraints(ca=is_ca, path_length=0 if is_ca else None), critical=True)
               .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False))
    if is_ca:
        builder = builder.add_extension(x509.KeyUsage(
            digital_signature=True, key_cert_sign=True, crl_sign=True, content_commitment=False,
            key_encipherment=False, data_encipherment=False, key_agreement=False, encipher_only=False,
            decipher_only=False), critical=True)
    else:
        usage = ExtendedKeyUsageOID.SERVER_AUTH if server else ExtendedKeyUsageOID.CLIENT_AUTH
        builder = (builder.add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
                   .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer[0].public_key()),
                                  critical=False))
        if dns_names:
            builder = builder.add_extension(x509.SubjectAlternativeName(_subject_alt_names(dns_names)),
                                            critical=False)
    return builder.sign(key if is_ca else issuer[1], hashes.SHA256()), key


def write_pem(path: pathlib.Path, cert: x509.Certificate | None = None, key=None) -> None:
    """A certificate or a key (mode 0600, written through a temporary file and renamed, so a server
    that re-reads it never sees half a file)."""
    if key is not None:
        data = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                 serialization.NoEncryption())
    else:
        data = cert.public_bytes(serialization.Encoding.PEM)
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600 if key is not None else 0o644)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    os.replace(tmp, path)


def write_pair(directory: pathlib.Path, cert: x509.Certificate, key, ca: x509.Certificate) -> None:
    """tls.crt, tls.key and ca.crt in `directory`, a Kubernetes TLS Secret's keys."""
    directory.mkdir(parents=True, exist_ok=True)
    write_pem(directory / "ca.crt", ca)
    write_pem(directory / "tls.key", key=key)
    write_pem(directory / "tls.crt", cert)


def load_or_make_ca(directory: pathlib.Path, valid_days: float) -> tuple[x509.Certificate, object, bool]:
    """(cert, key, reused): the CA already in `directory`, else a new one written there."""
    cert_path, key_path = directory / "ca.crt", directory / "ca.key"
    if cert_path.exists() and key_path.exists():
        try:
            cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
            key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
        except (ValueError, TypeError):
            raise UserError(f"{directory}: ca.crt/ca.key are not a PEM certificate and its unencrypted key") from None
        return cert, key, True
    cert, key = issue("flowscope CA", valid_days=valid_days)
    write_pem(key_path, key=key)
    write_pem(cert_path, cert)
    return cert, key, False


def generate(directory: pathlib.Path, valid_days: float = 365, ca_valid_days: float = 3 * 365,
             extra_names: tuple[str, ...] = ()) -> list[pathlib.Path]:
    """The whole set in `directory`; `extra_names` are added to both server certificates (e.g.
    localhost, a node's address). Returns the directories written."""
    directory.mkdir(parents=True, exist_ok=True)
    ca_cert, ca_key, _ = load_or_make_ca(directory, ca_valid_days)
    written = []
    for leaf in LEAVES:
        names = leaf.dns_names + (extra_names if leaf.server else ())
        cert, key = issue(leaf.common_name, names, (ca_cert, ca_key), valid_days=valid_days, server=leaf.server)
        write_pair(directory / leaf.name, cert, key, ca_cert)
        written.append(directory / leaf.name)
    return written


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("action", choices=("generate",), help="generate: write (or renew) the certificates")
    parser.add_argument("directory", metavar="DIR", help="where to write them (created if needed)")
    parser.add_argument("--validity-days", type=positive(float, "days"), default=365, help="of the server and client certificates")
    parser.add_argument("--ca-validity-days", type=positive(float, "days"), default=3 * 365, help="of a new CA")
    parser.add_argument("--san", action="append", default=[], metavar="NAME",
                        help="another DNS name or IP address for both server certificates (repeatable), "
                             "e.g. localhost for one machine")


def run(args: argparse.Namespace) -> int:
    directory = pathlib.Path(args.directory)
    reused = (directory / "ca.crt").exists() and (directory / "ca.key").exists()
    try:
        written = generate(directory, args.validity_days, args.ca_validity_days, tuple(args.san))
    except OSError as err:
        raise UserError(f"{directory}: cannot write certificates ({err.strerror})") from None
    print(f"{'reused' if reused else 'created'} CA {directory / 'ca.crt'} (keep ca.key secret)")
    for path in written:
        print(f"wrote {path}/tls.crt, tls.key, ca.crt")
    return 0
