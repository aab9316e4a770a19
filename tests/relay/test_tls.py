"""TLS and mutual TLS between clients and the relay; bad certificates are named with the reason."""

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from proto.observer import observer_pb2, observer_pb2_grpc
from relay.tls import TLSError, TLSFiles, channel_credentials, secure_channel, server_credentials


def status(channel: grpc.Channel) -> observer_pb2.ServerStatusResponse:
    return observer_pb2_grpc.ObserverStub(channel).ServerStatus(observer_pb2.ServerStatusRequest(), timeout=5)


def test_expired_server_certificate_is_named_with_its_expiry(test_pki):
    files = TLSFiles(cert=test_pki.expired_server.cert, key=test_pki.expired_server.key)
    with pytest.raises(TLSError, match=r"server certificate .*expired-server\.crt: certificate "
                                       r"CN=relay\.flowscope\.test expired on \d{4}-"):
        server_credentials(files)


def test_key_of_another_certificate_missing_file_and_garbage_are_named(test_pki, tmp_path):
    with pytest.raises(TLSError, match=r"server key .*client\.key does not belong to certificate .*server\.crt"):
        server_credentials(TLSFiles(cert=test_pki.server.cert, key=test_pki.client.key))
    with pytest.raises(TLSError, match=r"CA /nonexistent/ca\.pem: cannot read \(No such file"):
        channel_credentials(TLSFiles(ca="/nonexistent/ca.pem"))
    garbage = tmp_path / "garbage.pem"
    garbage.write_text("hello")
    with pytest.raises(TLSError, match=r"client CA .*garbage\.pem: not a PEM certificate"):
        server_credentials(TLSFiles(cert=test_pki.server.cert, key=test_pki.server.key, ca=str(garbage)))
    with pytest.raises(TLSError, match="mutual TLS needs a CA"):
        server_credentials(TLSFiles(cert=test_pki.server.cert, key=test_pki.server.key,
                                    require_client_cert=True))


def test_clients_to_relay_over_tls_and_mutual_tls(test_pki, relay_factory):
    mtls = TLSFiles(cert=test_pki.server.cert, key=test_pki.server.key, ca=test_pki.ca,
                    require_client_cert=True)
    running = relay_factory(tls=mtls)
    good = TLSFiles(ca=test_pki.ca, cert=test_pki.client.cert, key=test_pki.client.key,
                    server_name="relay.flowscope.test")
    with secure_channel(running.address, good) as channel:
        assert status(channel).max_flows == 65536
        check = health_pb2_grpc.HealthStub(channel).Check(
            health_pb2.HealthCheckRequest(service="hubble.server.Observer"), timeout=5)
        assert check.status == health_pb2.HealthCheckResponse.SERVING
    # No client certificate, or one from a CA the relay does not trust: refused in the handshake.
    for files in (TLSFiles(ca=test_pki.ca),
                  TLSFiles(ca=test_pki.ca, cert=test_pki.stranger_client.cert, key=test_pki.stranger_client.key)):
        with secure_channel(running.address, files) as channel, pytest.raises(grpc.RpcError) as err:
            status(channel)
        assert err.value.code() == grpc.StatusCode.UNAVAILABLE
    # Plaintext to a TLS port fails too.
    with grpc.insecure_channel(running.address) as channel, pytest.raises(grpc.RpcError):
        status(channel)
    # A client trusting another CA refuses the relay.
    with secure_channel(running.address, TLSFiles(ca=test_pki.stranger_ca)) as channel, \
            pytest.raises(grpc.RpcError):
        status(channel)


def test_expired_client_certificate_is_refused_before_connecting(test_pki):
    with pytest.raises(TLSError, match=r"client certificate .*expired-client\.crt: .* expired on"):
        channel_credentials(TLSFiles(ca=test_pki.ca, cert=test_pki.expired_client.cert,
                                     key=test_pki.expired_client.key))
