"""TLS benchmark, run by hand:  .venv/bin/python bench/tls.py [--flows 100000] [--connections 200]

A collector Observer server in its own process (ring pre-filled with --flows flows), one client in this
process; side by side, the same run for each way the server listens:
  plaintext | TLS, static credentials (grpc.ssl_server_credentials) | TLS, reloading credentials
  (common.tls: re-read when the files change) | mutual TLS, reloading.
1. stream: flows/s of one GetFlows(number=N) stream, one flow per message as Hubble sends them.
2. connect: new connections per second, each a fresh channel doing one ServerStatus — the handshake's
   cost, and what the reloading fetcher (a stat of each file per handshake) adds to it.
"""

from __future__ import annotations

import argparse
import os
import pathlib
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import grpc  # noqa: E402

from proto.flow import flow_pb2  # noqa: E402
from proto.observer import observer_pb2, observer_pb2_grpc  # noqa: E402

HERE = os.path.abspath(__file__)
MODES = ("plaintext", "tls-static", "tls-reloading", "mtls-reloading")
SERVER_NAME = "collector.flowscope.local"


def template_flow(i: int) -> flow_pb2.Flow:
    flow = flow_pb2.Flow(verdict=flow_pb2.FORWARDED, Type=flow_pb2.L3_L4, node_name="bench-node",
                         traffic_direction=flow_pb2.EGRESS, Summary="TCP Flags: SYN", uuid=f"bench-{i}")
    flow.IP.source, flow.IP.destination, flow.IP.ipVersion = "10.244.0.11", "10.244.1.12", flow_pb2.IPv4
    flow.l4.TCP.source_port, flow.l4.TCP.destination_port = 40000 + i % 20000, 8080
    flow.source.namespace, flow.source.pod_name = "shop", "frontend-0"
    flow.destination.namespace, flow.destination.pod_name = "shop", "backend-0"
    flow.time.FromNanoseconds(1_700_000_000_000_000_000 + i * 1000)
    return flow


def serve(mode: str, pki: pathlib.Path, flows: int, port_file: str) -> None:
    """Child: the Observer server for one mode until stdin closes."""
    from collector.observer import Observer, create_server
    from collector.observer import server as server_module
    from common.tls import TLSConfig, load_server_files

    if mode == "tls-static":  # the alternative: fixed credentials, no fetcher
        def static(tls: TLSConfig) -> grpc.ServerCredentials:
            pair, cas = load_server_files(tls)
            return grpc.ssl_server_credentials([pair], root_certificates=cas, require_client_auth=cas is not None)
        server_module.server_credentials = static
    observer = Observer("bench-node", ring_capacity=flows)
    observer.publish_many([template_flow(i) for i in range(flows)])
    tls = None
    if mode != "plaintext":
        leaf = pki / "collector-server"
        tls = TLSConfig(str(leaf / "tls.crt"), str(leaf / "tls.key"),
                        client_ca=str(leaf / "ca.crt") if mode.startswith("mtls") else None)
    server, port = create_server(observer, "127.0.0.1:0", tls=tls)
    pathlib.Path(port_file).write_text(str(port))
    sys.stdin.read()
    server.stop(0)


def client_tls(mode: str, pki: pathlib.Path):
    from common.tls import ClientTLS
    if mode == "plaintext":
        return None
    client = pki / "relay-client"
    mutual = mode.startswith("mtls")
    return ClientTLS(ca=str(pki / "ca.crt"), cert=str(client / "tls.crt") if mutual else None,
                     key=str(client / "tls.key") if mutual else None, server_name=SERVER_NAME)


def measure(mode: str, pki: pathlib.Path, flows: int, connections: int) -> tuple[float, float]:
    from common.tls import channel
    with tempfile.TemporaryDirectory() as tmp:
        port_file = os.path.join(tmp, "port")
        child = subprocess.Popen([sys.executable, HERE, "--serve", mode, "--pki", str(pki), "--flows", str(flows),
                                  "--port-file", port_file], stdin=subprocess.PIPE)
        try:
            while not os.path.exists(port_file) or not pathlib.Path(port_file).read_text():
                time.sleep(0.05)
            address = f"127.0.0.1:{pathlib.Path(port_file).read_text()}"
            tls = client_tls(mode, pki)
            with channel(address, tls) as ch:
                stub = observer_pb2_grpc.ObserverStub(ch)
                stub.ServerStatus(observer_pb2.ServerStatusRequest(), timeout=30)
                start = time.perf_counter()
                got = sum(1 for r in stub.GetFlows(observer_pb2.GetFlowsRequest(number=flows), timeout=600)
                          if r.HasField("flow"))
                stream_rate = got / (time.perf_counter() - start)
            assert got == flows, (got, flows)
            start = time.perf_counter()
            for _ in range(connections):
                with channel(address, tls) as ch:
                    observer_pb2_grpc.ObserverStub(ch).ServerStatus(observer_pb2.ServerStatusRequest(), timeout=30)
            connect_rate = connections / (time.perf_counter() - start)
        finally:
            child.stdin.close()
            child.wait(timeout=30)
    return stream_rate, connect_rate


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--flows", type=int, default=100_000)
    parser.add_argument("--connections", type=int, default=200)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--serve", choices=MODES, help=argparse.SUPPRESS)
    parser.add_argument("--pki", help=argparse.SUPPRESS)
    parser.add_argument("--port-file", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(args.serve, pathlib.Path(args.pki), args.flows, args.port_file)
        return
    from flowscope.commands.certs import generate
    with tempfile.TemporaryDirectory() as tmp:
        pki = pathlib.Path(tmp) / "pki"
        generate(pki)
        print(f"{'mode':<16} {'stream flows/s (median of runs)':>32} {'new connections/s':>18}")
        for mode in MODES:
            results = sorted(measure(mode, pki, args.flows, args.connections) for _ in range(args.runs))
            streams = sorted(r[0] for r in results)
            connects = sorted(r[1] for r in results)
            print(f"{mode:<16} {streams[len(streams) // 2]:>32,.0f} {connects[len(connects) // 2]:>18,.0f}",
                  flush=True)


if __name__ == "__main__":
    main()
