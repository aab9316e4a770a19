"""Stored flows read through a relay's Observer API.

An embedded store (chdb) can be opened by one process only, and while `flowscope up` or `flowscope relay`
runs, that process is the relay. Tools that replay history (policy suggest and check) then ask the relay,
which answers `since`/`until` from its store: the same query, one GetFlows call away.
"""

from __future__ import annotations

from typing import Iterable

import grpc
from google.protobuf import timestamp_pb2

from collector.observer.request import ALL
from common.tls import ClientTLS, channel, diagnose_handshake
from common.errors import UserError
from proto.flow import flow_pb2
from proto.observer import observer_pb2, observer_pb2_grpc



class RelayUnavailable(UserError):
    """The relay could not answer a history query."""


class RelayFlowSource:
    """`query_flows(...)` with FlowStore's signature, answered by the relay at `address`."""

    def __init__(self, address: str, tls: ClientTLS | None = None, timeout_s: float = 600.0) -> None:
        self.address, self._tls = address, tls
        self._channel = channel(address, tls, options=[("grpc.max_receive_message_length", 64 << 20)])
        self._stub = observer_pb2_grpc.ObserverStub(self._channel)
        self._timeout = timeout_s

    def query_flows(self, whitelist: Iterable[flow_pb2.FlowFilter] = (),
                    blacklist: Iterable[flow_pb2.FlowFilter] = (), since: int | None = None,
                    until: int | None = None, limit: int | None = 100,
                    first: bool = False) -> list[flow_pb2.Flow]:
        request = observer_pb2.GetFlowsRequest(whitelist=list(whitelist), blacklist=list(blacklist),
                                               number=limit or ALL, first=first)
        if since is not None:
            request.since.CopyFrom(_timestamp(since))
        if until is not None:
            request.until.CopyFrom(_timestamp(until))
        try:
            return [r.flow for r in self._stub.GetFlows(request, timeout=self._timeout)
                    if r.HasField("flow")]
        except grpc.RpcError as err:
            why = diagnose_handshake(self.address, self._tls) if err.code() == grpc.StatusCode.UNAVAILABLE else ""
            raise RelayUnavailable(f"relay {self.address}: {why or f'{err.code().name}: {err.details()}'}") from None

    def close(self) -> None:
        self._channel.close()


def _timestamp(ns: int) -> timestamp_pb2.Timestamp:
    stamp = timestamp_pb2.Timestamp()
    stamp.FromNanoseconds(ns)
    return stamp
