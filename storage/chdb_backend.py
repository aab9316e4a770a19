"""The embedded engine (chdb = ClickHouse in this process).

chdb runs ONE embedded server per process, bound to one data directory (opening a second directory
fails), and a directory is locked by the process that opened it. So every store of a process with the
same directory shares one chdb Session; the Session is thread-safe (internal mutexes; DESIGN.md: several
threads querying while another inserts worked). Inserts go as Arrow IPC streams: pyarrow builds the
columns in C, and ClickHouse reads them without per-row Python work.
"""

from __future__ import annotations

import io
import os
import threading
from typing import Sequence

import pyarrow as pa

from storage.backend import Column
from storage.errors import StorageError

_lock = threading.Lock()
_sessions: dict[str, object] = {}  # directory -> chdb Session for queries (one per process)
# Conversions (convert()) in a process without a store: a Session of no directory, closed as soon as a
# store opens one (the embedded server then restarts on that directory). Taken before _lock.
_convert_lock = threading.Lock()
_private: list = []
_inserters: dict[str, tuple[object, threading.Lock]] = {}  # directory -> (Session, lock) for inserts

# Replacing/AggregatingMergeTree run their merge algorithm over every inserted block by default; here
# that only repeats what the writer (uuid dedup) and the views (GROUP BY) did already, and it halved
# ingest (64k -> 140k flows/s measured, docs/benchmarks.md). Duplicates still collapse at merges.
INSERT_SETTINGS = "optimize_on_insert = 0"

_ARROW = {
    "UInt8": pa.uint8(), "UInt16": pa.uint16(), "UInt32": pa.uint32(), "UInt64": pa.uint64(),
    "Int8": pa.int8(), "Int16": pa.int16(), "Int32": pa.int32(), "Int64": pa.int64(),
    "String": pa.string(), "Array(String)": pa.list_(pa.string()), "Float64": pa.float64(),
    "UUID": pa.string(),  # ClickHouse parses the text
}


def arrow_type(column: Column) -> pa.DataType:
    if column.name == "raw":
        return pa.binary()
    return _ARROW[column.type]


def _insert_session(path: str) -> tuple[object, threading.Lock]:
    """A second connection to the same embedded server for inserts: while a streaming insert runs, chdb
    refuses queries on that connection (they fail at once), so queries keep their own."""
    from chdb import session as chdb_session
    with _lock:
        if path not in _inserters:
            _inserters[path] = (chdb_session.Session(path), threading.Lock())
        return _inserters[path]


def _session(path: str):
    from chdb import session as chdb_session
    with _convert_lock, _lock:
        if path in _sessions:
            return _sessions[path]
        if _private:
            _private.pop().close()
        if _sessions:
            other = next(iter(_sessions))
            raise StorageError(f"chdb://{path}: this process already opened the embedded store "
                               f"chdb://{other}; one process can open only one chdb directory")
        try:
            os.makedirs(path, exist_ok=True)
            sess = chdb_session.Session(path)
        except OSError as err:
            raise StorageError(f"chdb://{path}: cannot create the data directory: {err}") from None
        except Exception as err:  # chdb raises RuntimeError for a locked or bad directory
            raise StorageError(f"chdb://{path}: cannot open the embedded store ({err}); is another "
                               "process (flowscope up/relay) using this directory?") from None
        _sessions[path] = sess
        return sess


def convert(sql: str, fmt: str) -> bytes:
    """The answer (in format `fmt`) of a query that reads no store table — the server path's
    envelopes -> Native rows (storage.ingest.native) — on this process's embedded engine: the open
    store's session, else a private one."""
    from chdb import session as chdb_session
    with _convert_lock:
        with _lock:
            session = next(iter(_sessions.values()), None)
            if session is None:
                if not _private:
                    _private.append(chdb_session.Session())
                session = _private[0]
        try:
            return session.query(sql, fmt).bytes()
        except Exception as err:
            raise StorageError(f"embedded engine: {str(err).strip().splitlines()[0]}") from None


class ChdbBackend:
    def __init__(self, path: str) -> None:
        self.path = path
        self.description = f"chdb://{path}"
        self._session = _session(path)
        (version,), = self.rows("SELECT version()")
        self.version = tuple(int(x) for x in version.split(".")[:3])

    def _query(self, sql: str, fmt: str):
        try:
            return self._session.query(sql, fmt)
        except Exception as err:
            raise StorageError(f"{self.description}: {str(err).strip().splitlines()[0]}") from None

    def execute(self, sql: str) -> None:
        self._query(sql, "CSV")

    def rows(self, sql: str, binary: bool = False) -> list[tuple]:
        setting = "0" if binary else "1"
        table = self._query(f"{sql} SETTINGS output_format_arrow_string_as_string={setting}",
                            "ArrowTable")
        if table.num_rows == 0:
            return []
        return list(zip(*(col.to_pylist() for col in table.columns)))

    def arrow_table(self, sql: str) -> pa.Table:
        """A query's answer as ClickHouse writes it in Arrow (no Python per row)."""
        return self._query(f"{sql} SETTINGS output_format_arrow_string_as_string=1", "ArrowTable")

    def insert(self, table: str, columns: Sequence[Column], data: dict[str, list]) -> int:
        arrays = [pa.array(data[c.name], type=arrow_type(c)) for c in columns]
        batch = pa.Table.from_arrays(arrays, names=[c.name for c in columns])
        sink = io.BytesIO()
        with pa.ipc.new_stream(sink, batch.schema) as stream:
            stream.write_table(batch)
        self._stream_insert(f"INSERT INTO {table} ({', '.join(c.name for c in columns)}) SETTINGS "
                            f"{INSERT_SETTINGS}", "ArrowStream", sink.getvalue())
        return batch.num_rows

    def _stream_insert(self, statement: str, fmt: str, data: bytes) -> None:
        session, lock = _insert_session(self.path)
        try:
            with lock:
                inserter = session.send_insert(statement, fmt)
                inserter.append(data)
                inserter.finish()
        except Exception as err:
            raise StorageError(f"{self.description}: {statement.split(' SETTINGS')[0]} failed: "
                               f"{str(err).strip().splitlines()[0]}") from None

    def insert_protobuf(self, table: str, data: bytes, format_schema: str) -> None:
        """Inserts length-delimited protobuf messages; ClickHouse maps their fields to the columns."""
        self._stream_insert(f"INSERT INTO {table} SETTINGS format_schema = '{format_schema}', "
                            f"{INSERT_SETTINGS}", "Protobuf", data)

    def close(self) -> None:
        # The Session lives as long as the process: chdb cannot reopen another directory anyway,
        # and other stores of this process may share it.
        pass
