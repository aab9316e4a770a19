"""What every query shares: time windows (common.timeparse.to_ns, raising StorageTimeError), the
namespace narrowing, the names of protocol and enum codes, and quantiles as floats."""

from __future__ import annotations

import math
from typing import Iterable

from common.protocols import L4_NAMES
from common.timeparse import TimeLike, to_ns
from storage.backend import quote
from storage.errors import StorageError, StorageTimeError
from storage.schema.columns import L7_PROTO

NS = 1_000_000_000
PROTOCOL_NAMES = {**L4_NAMES, 0: ""}
L7_NAMES = {number: record for record, number in L7_PROTO.items() if record}


def ns(value: TimeLike, name: str) -> int | None:
    """A query's time argument in nanoseconds (None: unbounded); StorageTimeError names a bad one."""
    return to_ns(value, name, StorageTimeError)


def minutes(since: TimeLike, until: TimeLike, column: str = "minute",
            bucket_s: int = 60) -> tuple[int, int, str]:
    """(since_ns, until_ns, SQL condition on `column`) of an aggregate query's window, widened to whole
    buckets of `bucket_s` seconds (the bucket containing `since` is included)."""
    since_ns, until_ns = ns(since, "since"), ns(until, "until")
    if since_ns is None or until_ns is None:
        raise StorageError("since and until are required for aggregate queries")
    if since_ns > until_ns:
        raise StorageError(f"since ({since_ns}) is after until ({until_ns})")
    start = since_ns // NS // bucket_s * bucket_s
    end = -(-until_ns // NS)
    return since_ns, until_ns, (f"{column} >= toDateTime({start}) AND {column} < toDateTime({end})")


def in_list(column: str, values: Iterable[str]) -> str:
    return f"{column} IN ({', '.join(quote(v) for v in values)})"


def namespaces_sql(namespaces: Iterable[str] | None, a: str = "src_namespace", b: str = "dst_namespace") -> str:
    """` AND ...`: rows with either end in one of `namespaces` (None: no condition)."""
    if namespaces is None:
        return ""
    names = list(namespaces)
    if not names:
        return " AND 0"
    return f" AND ({in_list(a, names)} OR {in_list(b, names)})"


def enum_name(enum, number: int) -> str:
    try:
        return enum.Name(number)
    except ValueError:
        return str(number)


def quantiles(values) -> list[float | None]:
    values = list(values or [None, None, None])
    return [None if v is None or (isinstance(v, float) and math.isnan(v)) else float(v) for v in values]
