"""The TLS checks every gRPC listener must pass (collector, relay, `flowscope up`), driven through
`flowscope observe`'s command line: the right CA and client certificate read flows; no certificate,
one from another CA, an expired one, a wrong server name, a CA that does not sign the server and
plaintext are each refused with one line naming the cause."""

from __future__ import annotations

import os
import pathlib
import shutil
import subprocess

import grpc

from common.tls import ClientTLS, TLSConfig, diagnose_handshake
from proto.observer import observer_pb2, observer_pb2_grpc
from tests.fixtures.cli import flowscope_in_process


def observe(address: str, *flags: str) -> subprocess.CompletedProcess:
    """`flowscope observe --server tls://ADDRESS --all -o json FLAGS`, through the CLI's main() in this
    process (the handshake and its diagnosis are the same; a process per case cost 0.3 s of CPU)."""
    return flowscope_in_process("observe", "--server", address, "--all", "-o", "json", "--timeout", "10", *flags)


def client_flags(ca: str, cert, server_name: str) -> list[str]:
    flags = ["--tls-ca-cert-files", ca, "--tls-server-name", server_name]
    if cert is not None:
        flags += ["--tls-client-cert-file", cert.cert, "--tls-client-key-file", cert.key]
    return flags


def good_flags(pki, server_name: str) -> list[str]:
    return client_flags(pki.ca, pki.client, server_name)


def read_flows(address: str, pki, server_name: str) -> list[str]:
    """The JSON lines a client with the right CA and certificate reads (asserting it is let in)."""
    done = observe(f"tls://{address}", *good_flags(pki, server_name))
    assert done.returncode == 0, done.stderr
    return done.stdout.splitlines()


def served_files(directory: pathlib.Path, pki) -> TLSConfig:
    """Copies of the PKI's server certificate, key and CA, for a server whose files a test rotates."""
    directory.mkdir(parents=True, exist_ok=True)
    tls = TLSConfig(cert=str(directory / "tls.crt"), key=str(directory / "tls.key"),
                    client_ca=str(directory / "ca.crt"))
    rotate(tls, pki)
    return tls


def rotate(tls: TLSConfig, pki) -> None:
    """Puts `pki`'s server certificate, key and CA in place of `tls`'s files, each swapped in whole
    (a rename, as Kubernetes swaps a Secret volume)."""
    for source, target in ((pki.server.key, tls.key), (pki.server.cert, tls.cert), (pki.ca, tls.client_cas[0])):
        tmp = f"{target}.new"
        shutil.copyfile(source, tmp)
        os.replace(tmp, target)


def assert_rotation_is_used(address: str, tls: TLSConfig, old_pki, new_pki, server_name: str) -> None:
    """After the files are swapped, the next connection gets the new certificate and trusts the new
    client CA: the old CA's clients are refused, the new one's let in; no restart."""
    assert read_flows(address, old_pki, server_name)
    rotate(tls, new_pki)
    done = observe(f"tls://{address}", *good_flags(old_pki, server_name))
    assert done.returncode == 1 and "server certificate refused: unable to get local issuer certificate" in \
        done.stderr, done.stderr
    assert read_flows(address, new_pki, server_name)


def refusals(pki, server_name: str) -> list[tuple[str, list[str], str]]:
    """(case, flags, what the one-line error must say)."""
    return [
        ("no client certificate", client_flags(pki.ca, None, server_name),
         "the server requires a client certificate"),
        ("a client certificate from another CA", client_flags(pki.ca, pki.stranger_client, server_name),
         "the server refused the client certificate CN=stranger.flowscope.test,O=flowscope: it does not trust its issuer CN=stranger CA,O=flowscope"),
        ("an expired client certificate", client_flags(pki.ca, pki.expired_client, server_name), "expired on"),
        ("a wrong server name", client_flags(pki.ca, pki.client, "wrong.flowscope.test"),
         "server certificate refused: Hostname mismatch, certificate is not valid for 'wrong.flowscope.test'"),
        ("a CA that did not sign the server", client_flags(pki.stranger_ca, pki.client, server_name),
         "server certificate refused: unable to get local issuer certificate"),
    ]


def assert_refuses_bad_clients(address: str, pki, server_name: str) -> None:
    for case, flags, cause in refusals(pki, server_name):
        done = observe(f"tls://{address}", *flags)
        assert done.returncode == 1 and done.stdout == "", case
        lines = done.stderr.splitlines()
        assert len(lines) == 1 and lines[0].startswith("flowscope observe: error: ") and cause in lines[0], \
            (case, done.stderr)
    done = observe(address)  # plaintext
    assert done.returncode == 1 and done.stderr.splitlines() == [
        f"flowscope observe: error: {address}: the server speaks TLS: connect with TLS (--tls or tls://)"]
    assert_server_refuses_expired_client(address, pki, server_name)


def assert_server_refuses_expired_client(address: str, pki, server_name: str) -> None:
    """flowscope's own client will not even send an expired certificate (it names it, above); a client
    that does is refused by the server, and the handshake replay says so."""
    with open(pki.ca, "rb") as ca, open(pki.expired_client.key, "rb") as k, open(pki.expired_client.cert, "rb") as c:
        creds = grpc.ssl_channel_credentials(ca.read(), k.read(), c.read())
    with grpc.secure_channel(address, creds, options=[("grpc.ssl_target_name_override", server_name)]) as ch:
        try:
            list(observer_pb2_grpc.ObserverStub(ch).GetFlows(observer_pb2.GetFlowsRequest(number=1), timeout=10))
        except grpc.RpcError as err:
            assert err.code() == grpc.StatusCode.UNAVAILABLE, err
        else:
            raise AssertionError("an expired client certificate was accepted")
    why = diagnose_handshake(address, ClientTLS(ca=pki.ca, cert=pki.expired_client.cert,
                                                key=pki.expired_client.key, server_name=server_name))
    assert why.startswith("the server refused the client certificate: it expired on "), why


