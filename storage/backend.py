"""The one small interface both backends implement, and the SQL literal quoting they share.

Queries are built as plain SQL text with literals quoted here (both engines take the same text);
inserts hand over whole columns.
"""

from __future__ import annotations

import dataclasses
from typing import Protocol, Sequence


@dataclasses.dataclass(frozen=True)
class Column:
    """A column of an inserted table: `type` is the plain ClickHouse type; `low_cardinality` asks for
    LowCardinality(type) where the server has it; `codec` is used where the server has codecs."""

    name: str
    type: str
    low_cardinality: bool = False
    codec: str = ""


class Backend(Protocol):
    """A ClickHouse engine: embedded (storage.chdb_backend) or a server (storage.server_backend)."""

    version: tuple[int, ...]
    description: str  # where the data is, without secrets

    def execute(self, sql: str) -> None:
        """Runs a statement (DDL, ALTER ...) and discards any result."""

    def rows(self, sql: str, binary: bool = False) -> list[tuple]:
        """Runs a SELECT; String columns come back as str, or bytes when `binary`."""

    def insert(self, table: str, columns: Sequence[Column], data: dict[str, list]) -> int:
        """Inserts whole columns (same length) into `table` (qualified); returns the row count."""

    def close(self) -> None: ...


def quote(value) -> str:
    """A ClickHouse literal for a Python value (str, bytes, int, float, bool, list/tuple)."""
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, (list, tuple, set, frozenset)):
        return "[" + ", ".join(quote(v) for v in value) + "]"
    if isinstance(value, bytes):
        value = value.decode("utf-8", "surrogateescape")
    if isinstance(value, str):
        return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"
    raise TypeError(f"cannot quote {type(value).__name__} as a ClickHouse literal")
