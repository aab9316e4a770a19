"""Helpers for relay tests: real collector Observer servers ("nodes") fed with flows by the test."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import threading
import uuid
from dataclasses import dataclass, field

import grpc

from collector.observer import Observer, create_server
from proto.flow import flow_pb2
from proto.observer import observer_pb2_grpc
from relay import Peer
from lab.testbed.wait import wait_for
from tests.fixtures.cli import ROOT

def make_flow(t_ns: int, src: str, dst: str, namespace: str = "shop", port: int = 80,
              protocol: str = "tcp", verdict: int = flow_pb2.FORWARDED) -> flow_pb2.Flow:
    """A flow between two pods of `namespace`, as a collector would publish it."""
    flow = flow_pb2.Flow(uuid=str(uuid.uuid4()), verdict=verdict, Type=flow_pb2.L3_L4,
                         traffic_direction=flow_pb2.EGRESS)
    flow.time.FromNanoseconds(t_ns)
    flow.IP.source, flow.IP.destination, flow.IP.ipVersion = "10.244.0.1", "10.244.0.2", flow_pb2.IPv4
    l4 = flow.l4.TCP if protocol == "tcp" else flow.l4.UDP
    l4.source_port, l4.destination_port = 40000, port
    for ep, pod in ((flow.source, src), (flow.destination, dst)):
        ep.namespace, ep.pod_name = namespace, pod
        ep.labels.extend([f"k8s:app={pod.split('-')[0]}", f"k8s:io.kubernetes.pod.namespace={namespace}"])
    flow.event_type.type = 4
    flow.Summary = f"{protocol.upper()} Flags: SYN" if protocol == "tcp" else "UDP"
    return flow


@dataclass
class Node:
    """A real collector Observer with its gRPC server; `restart()` brings it back on the same port."""

    name: str
    observer: Observer
    server: grpc.Server
    port: int
    tls: object = None
    published: list[flow_pb2.Flow] = field(default_factory=list)

    @classmethod
    def start(cls, name: str, tls=None, ring_capacity: int = 65536) -> "Node":
        observer = Observer(name, ring_capacity=ring_capacity)
        server, port = create_server(observer, "localhost:0", tls=tls)
        return cls(name, observer, server, port, tls)

    @property
    def address(self) -> str:
        return f"localhost:{self.port}"

    def publish(self, *flows: flow_pb2.Flow) -> None:
        for flow in flows:
            self.observer.publish(flow)
            self.published.append(flow)

    def kill(self) -> None:
        self.server.stop(grace=0).wait()

    def restart(self) -> None:
        self.server, port = create_server(self.observer, self.address, tls=self.tls)
        assert port == self.port

    def restart_at(self, port: int) -> None:
        """Move this (new, empty) collector to `port`, where an earlier one was killed."""
        self.kill()
        self.port = port
        self.restart()

    def stop(self) -> None:
        self.kill()


def stub(address: str) -> observer_pb2_grpc.ObserverStub:
    return observer_pb2_grpc.ObserverStub(grpc.insecure_channel(address))


def read_until_cancelled(call, into: list) -> None:
    """Collect a streaming call's responses (from a thread) until the test cancels it."""
    try:
        for response in call:
            into.append(response)
    except grpc.RpcError as err:
        assert err.code() == grpc.StatusCode.CANCELLED


def storing_relay(relay_factory, relay_store, node: Node, flows: int):
    """A relay following `node` into relay_store, returned once the node's first `flows` flows are
    stored: (the running relay, its storage writer)."""
    writer = relay_store.writer()
    running = relay_factory(store=relay_store.store, writer=writer)
    running.relay.add_peer(Peer(node.name, node.address))
    wait_for(lambda: running.relay.stored_flows == flows, what=f"{flows} flows stored")
    return running, writer


class RelayProcess:
    """`flowscope relay` in a subprocess; .port is the Observer API port it bound."""

    def __init__(self, *args: str) -> None:
        self.proc = subprocess.Popen([sys.executable, "-m", "flowscope", "relay", "--listen-address",
                                      "localhost:0", *args], cwd=ROOT, stderr=subprocess.PIPE, text=True)
        self.log: list[str] = []
        self.port = 0
        self.started = ""
        wait_for(self._read_start_line, 60, "the relay to log its Observer API port", interval=0)
        threading.Thread(target=lambda: self.log.extend(self.proc.stderr), daemon=True).start()

    def _read_start_line(self) -> bool:
        """Reads one line of the log (blocking); True once it names the port."""
        line = self.proc.stderr.readline()
        assert line, "relay did not start:\n" + "".join(self.log)
        self.log.append(line)
        found = re.search(r"Observer API on port (\d+)", line)
        if found:
            self.port, self.started = int(found.group(1)), line
        return bool(found)

    @property
    def server(self) -> str:
        return f"localhost:{self.port}"

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(timeout=30)
