"""The server path without Python column building: the embedded engine (chdb, in this process) turns
CompactFlow envelopes (storage.ingest.envelope.encode_raws, the embedded path's own) into the server's
rows with the latest ingest's own SQL (the facts from the bytes, storage.schema.ingest_chain.facts_sql,
then storage.schema.ingest_view.latest_select), in ClickHouse's Native format, which the server takes
over HTTP (`INSERT ... FORMAT Native`). The rows hold only plain types (String, (U)Int, Array(String),
UUID) and LowCardinality(String) where the server's table has it (18.16 converts no String to
LowCardinality on insert), which Debian's 18.16 and current servers read alike.
"""

from __future__ import annotations

import os
import pathlib
import shutil
import tempfile
import threading
import weakref

from storage import chdb_backend
from storage.backend import quote
from storage.errors import StorageError
from storage.schema import envelope
from storage.schema.ingest_chain import SLIM_INGEST_COLUMNS, facts_sql
from storage.schema.ingest_view import latest_select


def _scratch_dir() -> str:
    # tmpfs when there is one: the batch is written once and read once
    shm = "/dev/shm"
    return tempfile.mkdtemp(prefix="flowscope-native-", dir=shm if os.path.isdir(shm) else None)


class NativeConverter:
    """Envelopes -> Native rows of the flows table; one conversion at a time (one scratch file)."""

    def __init__(self, low_cardinality: bool) -> None:
        self._dir = _scratch_dir()
        self._batch = pathlib.Path(self._dir) / "batch.protobuf"
        schema = envelope.write_schema(self._dir)
        rows = f"file({quote(str(self._batch))}, 'Protobuf', {quote(', '.join(SLIM_INGEST_COLUMNS))})"
        source = f"(SELECT {facts_sql()} FROM {rows})"  # the facts from the bytes, as the embedded ingest
        # raw whole but for time and uuid, as the Python column path stored it: cutting what the columns
        # rebuild costs the conversion 2.2x (17 vs 7.7 us per flow, bench/storage.py --targets)
        select, flow_columns = latest_select(source, low_cardinality, cut=False)
        self.columns = tuple(c.name for c in flow_columns)
        self._sql = f"{select} SETTINGS format_schema = {quote(schema)}"
        self._lock = threading.Lock()
        # also when the store is never closed (a process ending): the directory goes with this object
        self._cleanup = weakref.finalize(self, shutil.rmtree, self._dir, True)

    def convert(self, envelopes: bytes) -> bytes:
        with self._lock:
            try:
                if not self._batch.parent.exists():  # a cleaned-up /dev/shm: the schema file again
                    envelope.write_schema(self._dir)
                self._batch.write_bytes(envelopes)
            except OSError as err:
                raise StorageError(f"embedded engine: cannot write the batch to convert ({err})") from None
            try:
                return chdb_backend.convert(self._sql, "Native")
            finally:
                self._batch.unlink(missing_ok=True)  # tmpfs is memory: a batch is tens of MB

    def close(self) -> None:
        self._cleanup()
