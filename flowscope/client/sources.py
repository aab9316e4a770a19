"""Where the SDK's flows come from: a relay's (or collector's) Observer API over gRPC, or the flow store
itself. Each yields RecordBatches of schema.FLOW_SCHEMA with at most `batch_rows` rows."""

from __future__ import annotations

from typing import Iterator, Sequence

import pyarrow as pa

from common.tls import ClientTLS, channel
from flowscope.client.schema import STORE_COLUMNS, analysis_batch, flows_batch
from proto.flow import flow_pb2
from proto.observer import observer_pb2, observer_pb2_grpc

ALL = 2**64 - 1  # GetFlowsRequest.number for "everything" (hubble observe --all)


def _timestamp(ns: int):
    from google.protobuf import timestamp_pb2
    return timestamp_pb2.Timestamp(seconds=ns // 1_000_000_000, nanos=ns % 1_000_000_000)


class RelaySource:
    """GetFlows from an Observer server (the relay on :4245: memory, then storage for older windows)."""

    def __init__(self, address: str, tls: ClientTLS | None = None, timeout: float = 300.0) -> None:
        self.address = address
        self.timeout = timeout
        self._channel = channel(address, tls)
        self._stub = observer_pb2_grpc.ObserverStub(self._channel)

    def batches(self, whitelist: Sequence[flow_pb2.FlowFilter], blacklist: Sequence[flow_pb2.FlowFilter],
                since_ns: int | None, until_ns: int | None, batch_rows: int) -> Iterator[pa.RecordBatch]:
        request = observer_pb2.GetFlowsRequest(number=0 if since_ns is not None else ALL, whitelist=whitelist,
                                               blacklist=blacklist)
        if since_ns is not None:
            request.since.CopyFrom(_timestamp(since_ns))
        if until_ns is not None:
            request.until.CopyFrom(_timestamp(until_ns))
        call = self._stub.GetFlows(request, timeout=self.timeout)
        flows: list[flow_pb2.Flow] = []
        try:
            for response in call:
                if response.HasField("flow"):
                    flows.append(response.flow)
                    if len(flows) == batch_rows:
                        yield flows_batch(flows)
                        flows = []
        finally:
            call.cancel()  # a consumer that stops early ends the stream
        if flows:
            yield flows_batch(flows)

    def close(self) -> None:
        self._channel.close()


class StoreSource:
    """The flow store (storage.FlowStore): ClickHouse answers the columns, Arrow all the way."""

    def __init__(self, store) -> None:
        self.store = store

    def batches(self, whitelist: Sequence[flow_pb2.FlowFilter], blacklist: Sequence[flow_pb2.FlowFilter],
                since_ns: int | None, until_ns: int | None, batch_rows: int) -> Iterator[pa.RecordBatch]:
        for batch in self.store.flow_batches(STORE_COLUMNS, whitelist, blacklist, since_ns, until_ns, batch_rows):
            yield analysis_batch(batch)

    def close(self) -> None:
        self.store.close()
