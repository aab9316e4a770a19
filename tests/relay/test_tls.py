"""TLS and mutual TLS on both sides of the relay (clients -> relay, relay -> collectors), in process
and as `flowscope relay`; a bad or expired certificate is named with the reason; rotated certificates
serve the next connection."""

import re
import ssl
import urllib.error
import urllib.request
from concurrent import futures

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from collector.observer import FlowBatchesServicer, Observer, ObserverServicer
from common.tls import ClientTLS, TLSConfig, TLSError, channel
from proto.flowscope import flowscope_pb2_grpc
from proto.observer import observer_pb2, observer_pb2_grpc
from proto.relay import relay_pb2
from relay import Peer
from lab.testbed.wait import wait_for
from tests.common.tls_matrix import (assert_refuses_bad_clients, assert_rotation_is_used, good_flags, read_flows,
                                     served_files)
from tests.fixtures.relay import make_pki
from tests.fixtures.cli import flowscope
from tests.relay.nodes import make_flow


def status(ch: grpc.Channel) -> observer_pb2.ServerStatusResponse:
    return observer_pb2_grpc.ObserverStub(ch).ServerStatus(observer_pb2.ServerStatusRequest(), timeout=5)


def test_relay_refuses_to_start_with_an_expired_or_mismatched_certificate(test_pki, relay_factory):
    expired = TLSConfig(cert=test_pki.expired_server.cert, key=test_pki.expired_server.key)
    with pytest.raises(TLSError, match=r"server certificate .*expired-server\.crt: certificate "
                                       r"CN=relay\.flowscope\.test,O=flowscope expired on \d{4}-"):
        relay_factory(tls=expired)
    with pytest.raises(TLSError, match=r"server key .*client\.key does not belong to certificate .*server\.crt"):
        relay_factory(tls=TLSConfig(cert=test_pki.server.cert, key=test_pki.client.key))


def test_clients_to_relay_over_mutual_tls(test_pki, relay_factory):
    running = relay_factory(tls=TLSConfig(cert=test_pki.server.cert, key=test_pki.server.key,
                                          client_ca=test_pki.ca))
    good = ClientTLS(ca=test_pki.ca, cert=test_pki.client.cert, key=test_pki.client.key,
                     server_name="relay.flowscope.test")
    with channel(running.address, good) as ch:
        assert status(ch).max_flows == 65536
        check = health_pb2_grpc.HealthStub(ch).Check(
            health_pb2.HealthCheckRequest(service="hubble.server.Observer"), timeout=5)
        assert check.status == health_pb2.HealthCheckResponse.SERVING
    # No client certificate, one from a CA the relay does not trust, plaintext, or a client that does
    # not trust the relay's CA: all refused.
    refused = [ClientTLS(ca=test_pki.ca),
               ClientTLS(ca=test_pki.ca, cert=test_pki.stranger_client.cert, key=test_pki.stranger_client.key),
               None, ClientTLS(ca=test_pki.stranger_ca)]
    for tls in refused:
        with channel(running.address, tls) as ch, pytest.raises(grpc.RpcError) as err:
            status(ch)
        assert err.value.code() == grpc.StatusCode.UNAVAILABLE
    with pytest.raises(TLSError, match=r"client certificate .*expired-client\.crt: .* expired on"):
        channel(running.address, ClientTLS(ca=test_pki.ca, cert=test_pki.expired_client.cert,
                                           key=test_pki.expired_client.key))


def test_relay_to_collector_over_mutual_tls(test_pki, node_factory, relay_factory):
    node = node_factory("node-tls", tls=TLSConfig(cert=test_pki.server.cert, key=test_pki.server.key,
                                                  client_ca=test_pki.ca))
    node.publish(make_flow(1_700_000_000_000_000_000, "a-1", "b-1"))
    running = relay_factory()
    tls = ClientTLS(ca=test_pki.ca, cert=test_pki.client.cert, key=test_pki.client.key,
                    server_name="relay.flowscope.test")
    running.relay.add_peer(Peer(node.name, node.address, tls))
    wait_for(lambda: running.relay.status().seen_flows == 1, what="the flow over mutual TLS")
    [described] = [n.describe() for n in running.relay.nodes()]
    assert described.state == relay_pb2.NODE_CONNECTED and described.tls.enabled


def test_collector_with_expired_certificate_is_reported_with_the_reason(test_pki, node_factory, relay_factory):
    # The collector serves a certificate that expired yesterday (the file check is the collector's;
    # here it is bypassed by building credentials directly, as a collector started before expiry would).
    with open(test_pki.expired_server.key, "rb") as k, open(test_pki.expired_server.cert, "rb") as c:
        creds = grpc.ssl_server_credentials([(k.read(), c.read())])
    server = grpc.server(futures.ThreadPoolExecutor(4))
    observer = Observer("node-expired")
    observer_pb2_grpc.add_ObserverServicer_to_server(ObserverServicer(observer), server)
    flowscope_pb2_grpc.add_FlowBatchesServicer_to_server(FlowBatchesServicer(observer), server)
    port = server.add_secure_port("localhost:0", creds)
    server.start()
    try:
        running = relay_factory()
        running.relay.add_peer(Peer("node-expired", f"localhost:{port}",
                                    ClientTLS(ca=test_pki.ca, server_name="relay.flowscope.test")))
        node = running.relay.nodes()[0]
        wait_for(lambda: node.info.state == relay_pb2.NODE_UNAVAILABLE, what="node unavailable")
        assert "certificate has expired" in node.info.message, node.info.message
        status = running.relay.status()
        assert list(status.unavailable_nodes) == ["node-expired"]
    finally:
        server.stop(0)
    # A relay whose own client certificate expired says so before it dials anything.
    running.relay.add_peer(Peer("node-expired", f"localhost:{port}",
                                ClientTLS(ca=test_pki.ca, cert=test_pki.expired_client.cert,
                                          key=test_pki.expired_client.key)))
    node = running.relay.nodes()[0]
    wait_for(lambda: node.info.state == relay_pb2.NODE_ERROR, what="node error")
    assert "expired-client.crt" in node.info.message and "expired on" in node.info.message


def test_flowscope_relay_process_mutual_tls_on_both_sides(test_pki, node_factory, relay_process, tmp_path):
    """`flowscope relay` with Hubble Relay's flags: mutual TLS to the collector and to its clients;
    every bad client refused in one line; its certificates swapped on disk serve the next client."""
    node = node_factory("node-tls", tls=TLSConfig(cert=test_pki.server.cert, key=test_pki.server.key,
                                                  client_ca=test_pki.ca))
    node.publish(make_flow(1_700_000_000_000_000_000, "a-1", "b-1"))
    served = served_files(tmp_path / "relay-tls", test_pki)
    relay = relay_process(
        "--storage", "none", "--peer", f"node-tls={node.address}",
        "--tls-hubble-server-ca-files", test_pki.ca, "--tls-hubble-client-cert-file", test_pki.client.cert,
        "--tls-hubble-client-key-file", test_pki.client.key, "--tls-hubble-server-name", "relay.flowscope.test",
        "--tls-relay-server-cert-file", served.cert, "--tls-relay-server-key-file", served.key,
        "--tls-relay-client-ca-files", served.client_ca, "--metrics-listen-address", "localhost:0",
        "--metrics-server-tls-cert-file", test_pki.server.cert, "--metrics-server-tls-key-file", test_pki.server.key,
        "--metrics-server-tls-client-ca-files", test_pki.ca)
    assert "(mutual TLS)" in relay.started
    assert_metrics_need_a_client_certificate(int(re.search(r"metrics on port (\d+)", relay.started).group(1)),
                                             test_pki)
    wait_for(lambda: len(read_flows(relay.server, test_pki, "relay.flowscope.test")) == 1,
             what="the collector's flow through the relay, mutual TLS on both hops")
    assert_refuses_bad_clients(relay.server, test_pki, "relay.flowscope.test")
    policy = ("policy", "suggest", "--server", f"tls://{relay.server}", "--since", "2023-01-01T00:00:00Z")
    done = flowscope(*policy, *good_flags(test_pki, "relay.flowscope.test"))
    assert done.returncode == 0 and "kind: NetworkPolicy" in done.stdout, done.stderr
    done = flowscope(*policy, "--tls-ca-cert-files", test_pki.ca, "--tls-server-name", "relay.flowscope.test")
    assert done.returncode == 1 and done.stderr.splitlines() == [
        f"flowscope policy: error: relay {relay.server}: the server requires a client certificate "
        "(--tls-client-cert-file/--tls-client-key-file)"], done.stderr
    assert_rotation_is_used(relay.server, served, test_pki, make_pki(tmp_path / "next"), "relay.flowscope.test")
    assert relay.proc.poll() is None


def assert_metrics_need_a_client_certificate(port: int, pki) -> None:
    context = ssl.create_default_context(cafile=pki.ca)
    with pytest.raises((ssl.SSLError, urllib.error.URLError, ConnectionResetError)):
        urllib.request.urlopen(f"https://localhost:{port}/metrics", context=context, timeout=5).read()
    context.load_cert_chain(pki.client.cert, pki.client.key)
    with urllib.request.urlopen(f"https://localhost:{port}/metrics", context=context, timeout=5) as answer:
        assert "flowscope_" in answer.read().decode()


def test_relay_refuses_plaintext_beyond_loopback_unless_asked(test_pki):
    done = flowscope("relay", "--listen-address", "0.0.0.0:0", "--storage", "none", "--peer", "n=localhost:1")
    assert done.returncode == 1 and done.stderr.splitlines() == [
        "flowscope relay: error: 0.0.0.0:0: will not serve flows in plaintext beyond loopback; give "
        "--tls-relay-server-cert-file and --tls-relay-server-key-file (`flowscope certs generate DIR` makes "
        "them), listen on localhost, or pass --disable-server-tls"]
    done = flowscope("relay", "--listen-address", "0.0.0.0:0", "--storage", "none", "--peer", "n=localhost:1",
                     "--disable-server-tls", "--tls-relay-server-cert-file", test_pki.server.cert,
                     "--tls-relay-server-key-file", test_pki.server.key)
    assert done.returncode == 1 and "--disable-server-tls contradicts" in done.stderr


def test_up_with_tls_and_no_unix_socket_needs_the_relays_client_flags(test_pki):
    done = flowscope("up", "--unix-socket", "", "--tls-cert-file", test_pki.server.cert,
                     "--tls-key-file", test_pki.server.key, "--tls-client-ca-files", test_pki.ca)
    assert done.returncode == 1 and done.stderr.splitlines() == [
        "flowscope up: error: the relay reaches this machine's collector through --unix-socket; without one it "
        "needs the --tls-hubble-* flags to reach it over TLS"], done.stderr
    done = flowscope("up", "--collector-address", "0.0.0.0:4244")
    assert done.returncode == 1 and "0.0.0.0:4244: will not serve flows in plaintext beyond loopback" in done.stderr
