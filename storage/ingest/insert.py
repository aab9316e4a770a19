"""The write half of a FlowStore (used by FlowWriter): flows -> envelopes the embedded engine parses
itself; for a server the same envelopes made into Native rows by the embedded engine and posted over
HTTP (storage.ingest.native), or Python-built columns into a server not migrated to 9; and which uuids
a batch being replayed has stored already."""

from __future__ import annotations

import dataclasses
import logging
from typing import Sequence

from proto.flow import flow_pb2
from storage.backend import quote
from storage.core import StoreCore
from storage.errors import ShardUnavailable, StorageUnavailable
from storage.ingest.columns import flows_to_columns, split_uuids
from storage.ingest.envelope import encode, encode_raws
from storage.ingest.native import NativeConverter
from storage.schema import envelope as envelope_schema
from storage.schema.columns import FLOW_COLUMNS, STORED_COLUMNS

log = logging.getLogger(__name__)
MAX_LIST_CHARS = 200_000  # of literals in one query (ClickHouse's max_query_size is 262,144 bytes)


@dataclasses.dataclass(frozen=True)
class EncodedFlows:
    """A batch ready for insert_encoded: protobuf envelopes (embedded engine) or columns (server)."""

    rows: int
    protobuf: bytes | None = None
    columns: dict[str, list] | None = None
    native: bytes | None = None  # Native rows of the flows table (a server)



class Ingest(StoreCore):
    def insert_columns(self, columns: dict[str, list]) -> int:
        """Inserts flows_to_columns' columns (the Python path: a server, or tools)."""
        if 9 in self._applied():
            return self.backend.insert(self.layout.target("flows"), STORED_COLUMNS, split_uuids(columns))
        return self.backend.insert(self.layout.target("flows"), FLOW_COLUMNS, columns)

    def insert_flows(self, flows: Sequence[flow_pb2.Flow], raws: Sequence[bytes]) -> int:
        """Inserts flows (`raws` = their serialized bytes): parsed by ClickHouse on the embedded engine,
        as Python-built columns on a server."""
        return self.insert_encoded(self.encode_flows(flows, raws))

    def encode_flows(self, flows: Sequence[flow_pb2.Flow] | None, raws: Sequence[bytes]) -> EncodedFlows:
        """The Python half of insert_flows (no insert yet): the FlowWriter encodes the next batch
        while ClickHouse inserts the current one (chdb releases the GIL while it works). `flows`:
        the parsed `raws`, or None — the embedded engine at schema 11 and a server need only the
        bytes (other stores get them parsed here)."""
        applied = self._applied()
        if self.features.protobuf_ingest and self._ingest_schema is None and 5 in applied:
            self._ingest_compact = 7 in applied
            self._ingest_schema = envelope_schema.write_schema(
                f"{self.url.path}.format_schemas",
                envelope_schema.COMPACT_MESSAGE if self._ingest_compact else envelope_schema.MESSAGE)
        if self._ingest_schema and 11 in applied:
            return EncodedFlows(len(raws), protobuf=encode_raws(raws))
        if hasattr(self.backend, "insert_native") and 9 in applied and self._http_ok:
            return EncodedFlows(len(raws), native=self._converter().convert(encode_raws(raws)))
        if flows is None:
            flows = [flow_pb2.Flow.FromString(raw) for raw in raws]
        if self._ingest_schema:
            return EncodedFlows(len(raws), protobuf=encode(flows, raws, self._ingest_compact))
        return EncodedFlows(len(raws), columns=flows_to_columns(flows, raws))

    def _check_http(self) -> None:
        """After a failed HTTP insert: when the server answers over its native protocol, its HTTP
        interface is not where the URL says (http_port): the store goes on with Python-built columns
        (the writer retries the batch, encoded again) and says so once."""
        try:
            self.backend.rows("SELECT 1")
        except StorageUnavailable:
            return  # the server is down: the writer spools and retries as for any outage
        self._http_ok = False
        log.warning("storage %s: no HTTP interface at port %d (set http_port= in the storage URL); "
                    "inserting Python-built columns over the native protocol instead, several times "
                    "slower", self.url.redacted(), self.url.http_port)

    def _converter(self) -> NativeConverter:
        if self._native is None:
            self._native = NativeConverter(self.features.low_cardinality)
        return self._native

    def insert_encoded(self, batch: EncodedFlows) -> int:
        if batch.native is not None:
            try:
                self.backend.insert_native(self.layout.target("flows"), self._converter().columns, batch.native)
            except ShardUnavailable:
                raise  # the server took the HTTP insert; one of its cluster's shards did not answer
            except StorageUnavailable:
                self._check_http()
                raise
            return batch.rows
        if batch.protobuf is not None:
            self.backend.insert_protobuf(f"{self.db}.flows_ingest", batch.protobuf, self._ingest_schema)
            return batch.rows
        return self.insert_columns(batch.columns)

    def existing_uuids(self, uuids: Sequence[str], since_ns: int, until_ns: int) -> set[str]:
        """Which of `uuids` (flows timed within [since_ns, until_ns]) are stored already."""
        if not uuids:
            return set()
        found: set[str] = set()
        chunk: list[str] = []
        size = 0
        for i, u in enumerate(uuids):
            chunk.append(quote(u))
            size += len(chunk[-1].encode()) + 2
            # ClickHouse refuses a query text over max_query_size (256 KiB by default): 10,000 uuids
            # of 36 characters were already 400 KB, and a refused replay check rejected spooled flows.
            if size >= MAX_LIST_CHARS or i == len(uuids) - 1:
                found.update(u for (u,) in self.backend.rows(
                    f"SELECT uuid FROM {self.layout.target('flows')} WHERE time_ns BETWEEN {since_ns} AND "
                    f"{until_ns} AND uuid IN ({', '.join(chunk)})"))
                chunk, size = [], 0
        return found
