"""A real Observer behind a real gRPC server on an ephemeral port and a unix socket."""

import dataclasses
import os
import tempfile

import grpc
import pytest

from collector.observer import Observer, create_server
from proto.flowscope import flowscope_pb2_grpc
from proto.observer import observer_pb2_grpc


@dataclasses.dataclass
class Served:
    observer: Observer
    server: grpc.Server
    port: int
    socket_path: str
    channel: grpc.Channel

    @property
    def stub(self) -> observer_pb2_grpc.ObserverStub:
        return observer_pb2_grpc.ObserverStub(self.channel)

    @property
    def batches(self) -> flowscope_pb2_grpc.FlowBatchesStub:
        return flowscope_pb2_grpc.FlowBatchesStub(self.channel)


@pytest.fixture
def serve():
    """serve(capacity=...) -> Served; everything is stopped after the test."""
    made = []
    tmp = tempfile.mkdtemp(prefix="fsobs-")

    def start(capacity: int = 1000, **observer_kw) -> Served:
        observer = Observer("node-1", ring_capacity=capacity, **observer_kw)
        path = os.path.join(tmp, f"observer{len(made)}.sock")
        server, port = create_server(observer, "127.0.0.1:0", unix_socket=path)
        served = Served(observer, server, port, path, grpc.insecure_channel(f"127.0.0.1:{port}"))
        made.append(served)
        return served

    yield start
    for s in made:
        s.channel.close()
        s.server.stop(0).wait(5)
    for name in os.listdir(tmp):
        os.unlink(os.path.join(tmp, name))
    os.rmdir(tmp)
