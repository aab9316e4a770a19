"""flowscope.client.Client: flows and aggregates as Arrow tables (or pandas DataFrames) for notebooks
and scripts.

    from flowscope.client import Client
    fs = Client(relay="localhost:4245")                    # or Client(storage="clickhouse://...")
    df = fs.flows(since="15m", source_pod="shop/", pandas=True)
    for batch in fs.flow_batches(since="7d"): ...          # bounded RecordBatches, any window

Filters are FlowFilter fields as keywords (`source_pod="shop/"`, `verdict="DROPPED"`, `http_status_code=
["5+"]`), one whitelist filter; `whitelist=`/`blacklist=` take FlowFilters for anything more. Times are
what `flowscope observe` takes ("15m" ago, RFC 3339) or datetimes or ns since the epoch. Aggregates
(service_map, http_red, dns) read storage's materialized views, so they need `storage=`.
"""

from __future__ import annotations

import dataclasses
import datetime
import time
from typing import Iterable, Iterator

import pyarrow as pa
from google.protobuf import json_format

from common.errors import UserError
from common.timeparse import parse_duration_ns, parse_time_ns
from common.tls import ClientTLS
from flowscope.client.schema import FLOW_SCHEMA
from flowscope.client.sources import RelaySource, StoreSource
from proto.flow import flow_pb2

DEFAULT_BATCH_ROWS = 65_536
TimeLike = str | int | datetime.datetime | None
Window = str | tuple[TimeLike, TimeLike]


class ClientError(UserError):
    """A bad argument to the SDK, named with what was expected."""


def time_ns(value: TimeLike, name: str, now_ns: int) -> int | None:
    if value is None:
        return None
    if isinstance(value, datetime.datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=datetime.timezone.utc)
        return round(value.timestamp() * 1_000_000) * 1000
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str):
        return parse_time_ns(name, value, now_ns)
    raise ClientError(f"{name}={value!r}: expected a duration ago ('15m'), an RFC 3339 time, a datetime "
                      "or nanoseconds since the epoch")


def flow_filter(fields: dict) -> flow_pb2.FlowFilter:
    """FlowFilter fields as keywords (a value or a list of them) -> one FlowFilter."""
    listed = {k: list(v) if isinstance(v, (list, tuple, set)) else [v] for k, v in fields.items()}
    try:
        return json_format.ParseDict(listed, flow_pb2.FlowFilter())
    except json_format.ParseError as err:
        raise ClientError(f"flow filter {fields}: {str(err).splitlines()[0]} (expected FlowFilter fields such as "
                          "source_pod='shop/', verdict='DROPPED', http_status_code='5+')") from None


def _rows_table(rows: list, kind: type) -> pa.Table:
    """Query result dataclasses as a table (an empty one keeps its columns)."""
    names = [f.name for f in dataclasses.fields(kind)]
    return pa.Table.from_pylist([dataclasses.asdict(r) for r in rows]) if rows else \
        pa.table({n: pa.array([], pa.null()) for n in names})


class Client:
    def __init__(self, relay: str | None = None, storage=None, tls: ClientTLS | None = None,
                 clock=time.time_ns) -> None:
        """relay: an Observer API address (host:port); storage: a storage URL or an open FlowStore.
        Flows come from storage when it is given (Arrow from ClickHouse), else from the relay."""
        if relay is None and storage is None:
            raise ClientError("Client: give relay='host:4245' or storage='chdb:///dir' / 'clickhouse://...'")
        self._clock = clock
        self.store = None
        if storage is not None:
            if isinstance(storage, str):
                import storage as storage_pkg
                storage = storage_pkg.open_store(storage)
                storage.require_schema()
            self.store = storage
        self._source = StoreSource(self.store) if self.store is not None else RelaySource(relay, tls)

    def close(self) -> None:
        self._source.close()

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- flows -------------------------------------------------------------------------------------

    def flow_batches(self, since: TimeLike = None, until: TimeLike = None,
                     whitelist: Iterable[flow_pb2.FlowFilter] = (), blacklist: Iterable[flow_pb2.FlowFilter] = (),
                     batch_rows: int = DEFAULT_BATCH_ROWS, **filters) -> Iterator[pa.RecordBatch]:
        """The window's flows, oldest first, as RecordBatches of at most batch_rows rows (FLOW_SCHEMA):
        memory stays bounded by one batch however long the window."""
        if batch_rows <= 0:
            raise ClientError(f"batch_rows={batch_rows}: expected a positive number of rows")
        now = self._clock()
        since_ns, until_ns = time_ns(since, "since", now), time_ns(until, "until", now)
        if since_ns is not None and until_ns is not None and since_ns > until_ns:
            raise ClientError(f"since ({since}) is after until ({until})")
        allow = list(whitelist) + ([flow_filter(filters)] if filters else [])
        return self._source.batches(allow, list(blacklist), since_ns, until_ns, batch_rows)

    def flows(self, since: TimeLike = None, until: TimeLike = None, pandas: bool = False, **kwargs):
        """The window's flows as one pyarrow Table (or a pandas DataFrame with pandas=True)."""
        table = pa.Table.from_batches(list(self.flow_batches(since, until, **kwargs)), schema=FLOW_SCHEMA)
        return table.to_pandas() if pandas else table

    # -- aggregates (storage) ----------------------------------------------------------------------

    def _window(self, window: Window) -> tuple[int, int]:
        now = self._clock()
        if isinstance(window, str):
            try:
                return now - parse_duration_ns(window), now
            except ValueError:
                raise ClientError(f"window {window!r}: expected a duration such as '1h', or (since, until)") from None
        since, until = window
        return time_ns(since, "since", now), time_ns(until, "until", now) or now

    def _aggregates(self):
        if self.store is None:
            raise ClientError("aggregates (service_map, http_red, dns) read storage: create the Client "
                              "with storage='clickhouse://...' or 'chdb:///dir'")
        return self.store

    def service_map(self, window: Window = "1h", namespaces: Iterable[str] | None = None,
                    pandas: bool = False):
        """The service map's edges in the window (client -> server, port, protocol, verdict, flows,
        bytes, L7 requests, errors and latency quantiles)."""
        from storage import MapEdge
        since, until = self._window(window)
        table = _rows_table(self._aggregates().service_map(since, until, namespaces).edges, MapEdge)
        return table.to_pandas() if pandas else table

    def http_red(self, workload: str | None = None, window: Window = "1h", step_s: int = 60,
                 pandas: bool = False):
        """HTTP rate, errors and duration per server workload and step; workload as 'namespace/name'
        (or a name, or None for every workload)."""
        from storage import RedPoint
        namespace, name = workload.split("/", 1) if workload and "/" in workload else (None, workload)
        since, until = self._window(window)
        table = _rows_table(self._aggregates().http_red(since, until, step_s, namespace, name), RedPoint)
        return table.to_pandas() if pandas else table

    def dns(self, window: Window = "1h", step_s: int = 60, workload: str | None = None, pandas: bool = False):
        """DNS queries, responses, NXDOMAIN and errors per client workload and step."""
        from storage import DnsPoint
        namespace, name = workload.split("/", 1) if workload and "/" in workload else (None, workload)
        since, until = self._window(window)
        summary = self._aggregates().dns_summary(since, until, step_s, namespace, name)
        table = _rows_table(summary.series, DnsPoint)
        return table.to_pandas() if pandas else table
