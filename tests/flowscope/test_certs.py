"""`flowscope certs generate DIR`: a CA and the certificates of every hop, in Kubernetes TLS Secret
layout; they work with flowscope's servers and clients as they come; running it again renews the
certificates under the same CA."""

import os
import stat
import subprocess
import sys

from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID

from collector.observer import Observer, create_server
from common.tls import TLSConfig
from flowscope.commands.certs import LEAVES
from tests.common.filters.sample import make_flow
from tests.common.tls_matrix import observe


def generate(directory, *flags):
    return subprocess.run([sys.executable, "-m", "flowscope", "certs", "generate", str(directory), *flags],
                          capture_output=True, text=True, timeout=60)


def load(path) -> x509.Certificate:
    return x509.load_pem_x509_certificate(path.read_bytes())


def test_generate_writes_a_ca_and_every_certificate_signed_by_it(tmp_path):
    done = generate(tmp_path / "pki", "--san", "localhost", "--san", "10.0.0.7")
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[0].startswith("created CA ")
    ca = load(tmp_path / "pki/ca.crt")
    assert stat.S_IMODE(os.stat(tmp_path / "pki/ca.key").st_mode) == 0o600
    for leaf in LEAVES:
        directory = tmp_path / "pki" / leaf.name
        assert sorted(p.name for p in directory.iterdir()) == ["ca.crt", "tls.crt", "tls.key"]
        assert stat.S_IMODE(os.stat(directory / "tls.key").st_mode) == 0o600
        cert = load(directory / "tls.crt")
        cert.verify_directly_issued_by(ca)
        names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        usage = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
        if leaf.server:
            assert set(names.get_values_for_type(x509.DNSName)) == {*leaf.dns_names, "localhost"}
            assert [str(ip) for ip in names.get_values_for_type(x509.IPAddress)] == ["10.0.0.7"]
            assert list(usage) == [ExtendedKeyUsageOID.SERVER_AUTH]
        else:
            assert list(usage) == [ExtendedKeyUsageOID.CLIENT_AUTH]
    # Again: the same CA, new certificates.
    before = (tmp_path / "pki/collector-server/tls.crt").read_bytes()
    done = generate(tmp_path / "pki")
    assert done.returncode == 0 and done.stdout.startswith("reused CA "), done.stderr
    assert load(tmp_path / "pki/ca.crt") == ca
    assert (tmp_path / "pki/collector-server/tls.crt").read_bytes() != before


def test_generated_certificates_carry_mutual_tls_to_a_collector(tmp_path):
    pki = tmp_path / "pki"
    assert generate(pki).returncode == 0
    server_dir = pki / "collector-server"
    observer = Observer("node-certgen")
    observer.publish(make_flow())
    server, port = create_server(observer, "localhost:0", tls=TLSConfig(
        str(server_dir / "tls.crt"), str(server_dir / "tls.key"), client_ca=str(server_dir / "ca.crt")))
    try:
        def as_client(name: str, server_name: str = "collector.flowscope.local"):
            return observe(f"tls://localhost:{port}", "--tls-ca-cert-files", str(pki / name / "ca.crt"),
                           "--tls-client-cert-file", str(pki / name / "tls.crt"),
                           "--tls-client-key-file", str(pki / name / "tls.key"), "--tls-server-name", server_name)
        for client in ("relay-client", "cli-client"):
            done = as_client(client)
            assert done.returncode == 0 and done.stdout.count("\n") == 1, (client, done.stderr)
        done = as_client("relay-client", "node-1.collector.flowscope.local")  # the wildcard
        assert done.returncode == 0, done.stderr
        done = as_client("relay-server")  # a server certificate is not a client's
        assert done.returncode == 1 and "lacks clientAuth" in done.stderr, done.stderr
    finally:
        server.stop(0).wait(5)


def test_bad_arguments_are_one_line(tmp_path):
    (tmp_path / "file").write_text("")
    done = generate(tmp_path / "file" / "pki")
    assert done.returncode == 1 and len(done.stderr.splitlines()) == 1 and "cannot write certificates" in done.stderr
    done = generate(tmp_path / "pki", "--validity-days", "0")
    assert done.returncode == 2 and "expected a positive number of days" in done.stderr
