"""TLS and mutual TLS on the Observer API (certificates from the shared `test_pki` fixture), and errors
that name the bad file."""
import grpc
import pytest

from collector.observer import Observer, create_server
from common.tls import ClientTLS, TLSConfig, TLSError, channel
from flowscope.cli import main
from proto.observer import observer_pb2, observer_pb2_grpc
from tests.common.filters.sample import make_flow
from tests.common.tls_matrix import (assert_refuses_bad_clients, assert_rotation_is_used, observe, read_flows,
                                     served_files)
from tests.fixtures.relay import make_pki


@pytest.fixture
def tls_server(test_pki):
    servers = []

    def start(client_ca=None):
        observer = Observer("node-tls")
        observer.publish(make_flow())
        tls = TLSConfig(cert=test_pki.server.cert, key=test_pki.server.key, client_ca=client_ca)
        server, port = create_server(observer, "127.0.0.1:0", tls=tls)
        servers.append(server)
        return port

    yield start
    for s in servers:
        s.stop(0).wait(5)


def flows(port: int, tls: ClientTLS) -> list:
    with channel(f"127.0.0.1:{port}", tls) as ch:
        stub = observer_pb2_grpc.ObserverStub(ch)
        return list(stub.GetFlows(observer_pb2.GetFlowsRequest(number=5), timeout=5))


def test_tls_serves_flows_and_nodes_report_it(tls_server, test_pki):
    port = tls_server()
    assert len(flows(port, ClientTLS(ca=test_pki.ca, server_name="localhost"))) == 1
    with channel(f"127.0.0.1:{port}", ClientTLS(ca=test_pki.ca, server_name="localhost")) as ch:
        nodes = observer_pb2_grpc.ObserverStub(ch).GetNodes(observer_pb2.GetNodesRequest(), timeout=5)
    assert nodes.nodes[0].tls.enabled
    with pytest.raises(grpc.RpcError) as err:  # a plaintext client cannot talk to it
        flows(port, None)
    assert err.value.code() == grpc.StatusCode.UNAVAILABLE


def test_mutual_tls_requires_a_client_certificate(tls_server, test_pki):
    port = tls_server(client_ca=test_pki.ca)
    with_cert = ClientTLS(ca=test_pki.ca, cert=test_pki.client.cert, key=test_pki.client.key,
                          server_name="localhost")
    assert len(flows(port, with_cert)) == 1
    for refused in (ClientTLS(ca=test_pki.ca, server_name="localhost"),
                    ClientTLS(ca=test_pki.ca, cert=test_pki.stranger_client.cert,
                              key=test_pki.stranger_client.key, server_name="localhost")):
        with pytest.raises(grpc.RpcError) as err:
            flows(port, refused)
        assert err.value.code() == grpc.StatusCode.UNAVAILABLE


def test_observe_cli_over_mutual_tls(tls_server, test_pki, capsys):
    port = tls_server(client_ca=test_pki.ca)
    code = main(["observe", "--server", f"tls://127.0.0.1:{port}", "--tls-ca-cert-files", test_pki.ca,
                 "--tls-client-cert-file", test_pki.client.cert, "--tls-client-key-file", test_pki.client.key,
                 "--tls-server-name", "localhost", "-o", "json"])
    out, err = capsys.readouterr()
    assert code == 0 and out.count("\n") == 1, err


def test_bad_certificate_files_are_named(test_pki, tmp_path):
    observer = Observer("n")
    garbage = tmp_path / "garbage.pem"
    garbage.write_text("not a certificate")
    cases = [
        (TLSConfig(str(tmp_path / "missing.crt"), test_pki.server.key), "server certificate", "cannot read"),
        (TLSConfig(str(garbage), test_pki.server.key), str(garbage), "not a PEM certificate"),
        (TLSConfig(test_pki.expired_server.cert, test_pki.expired_server.key), test_pki.expired_server.cert,
         "expired on"),
        (TLSConfig(test_pki.server.cert, test_pki.client.key), test_pki.client.key, "does not belong to"),
        (TLSConfig(test_pki.server.cert, str(garbage)), str(garbage), "not an unencrypted PEM private key"),
        (TLSConfig(test_pki.server.cert, test_pki.server.key, client_ca=str(garbage)), "client CA",
         "not a PEM certificate"),
    ]
    for tls, names, reason in cases:
        with pytest.raises(TLSError) as err:
            create_server(observer, "127.0.0.1:0", tls=tls)
        assert names in str(err.value) and reason in str(err.value)


def test_every_refusal_is_one_line_naming_the_cause(tls_server, test_pki):
    port = tls_server(client_ca=test_pki.ca)
    assert len(read_flows(f"localhost:{port}", test_pki, "relay.flowscope.test")) == 1
    assert_refuses_bad_clients(f"localhost:{port}", test_pki, "relay.flowscope.test")


def test_certificates_swapped_on_disk_serve_the_next_connection(test_pki, tmp_path):
    observer = Observer("node-rotating")
    observer.publish(make_flow())
    tls = served_files(tmp_path / "served", test_pki)
    server, port = create_server(observer, "localhost:0", tls=tls)
    try:
        assert_rotation_is_used(f"localhost:{port}", tls, test_pki, make_pki(tmp_path / "next"),
                                "relay.flowscope.test")
    finally:
        server.stop(0).wait(5)


def test_a_half_written_rotation_keeps_the_last_good_certificates(test_pki, tmp_path, caplog):
    observer = Observer("node-rotating")
    observer.publish(make_flow())
    tls = served_files(tmp_path / "served", test_pki)
    server, port = create_server(observer, "localhost:0", tls=tls)
    try:
        with open(tls.cert, "w") as f:
            f.write("-----BEGIN CERTIFICATE-----\ntruncat")
        assert len(read_flows(f"localhost:{port}", test_pki, "relay.flowscope.test")) == 1
        assert any("keeping the previous certificates" in r.getMessage() and tls.cert in r.getMessage()
                   for r in caplog.records)
    finally:
        server.stop(0).wait(5)


def test_allow_insecure_encrypts_without_verifying_the_server(tls_server, test_pki):
    """hubble observe's --tls-allow-insecure: no CA needed (the server's is not trusted here), the
    connection is still TLS and still presents the client certificate a mutual-TLS server asks for."""
    port = tls_server(client_ca=test_pki.ca)
    address = f"tls://localhost:{port}"
    done = observe(address, "--tls-ca-cert-files", test_pki.stranger_ca, "--tls-client-cert-file",
                   test_pki.client.cert, "--tls-client-key-file", test_pki.client.key)
    assert done.returncode == 1 and "server certificate refused" in done.stderr, done.stderr
    done = observe(address, "--tls-allow-insecure", "--tls-client-cert-file", test_pki.client.cert,
                   "--tls-client-key-file", test_pki.client.key)
    assert done.returncode == 0 and done.stdout.count("\n") == 1, done.stderr
    done = observe(address, "--tls-allow-insecure")
    assert done.returncode == 1 and done.stderr.splitlines() == [
        f"flowscope observe: error: localhost:{port}: the server requires a client certificate "
        "(--tls-client-cert-file/--tls-client-key-file)"], done.stderr
