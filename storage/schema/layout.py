"""Where the tables live and what the connected ClickHouse can do: every migration and query needs these."""

from __future__ import annotations

import dataclasses

from storage.backend import quote


@dataclasses.dataclass(frozen=True)
class Features:
    """What the connected ClickHouse can do (Debian's 18.16 has none of the optional parts)."""

    version: tuple[int, ...]
    low_cardinality: bool
    codecs: bool
    ttl: bool
    datetime64: bool
    ip_or_default: bool  # IPv4StringToNumOrDefault(): newer servers throw on a bad address
    protobuf_ingest: bool = False  # the embedded engine parses flows itself (storage.schema.ingest_view)

    @classmethod
    def for_version(cls, version: tuple[int, ...]) -> "Features":
        return cls(version=version, low_cardinality=version >= (18, 16), codecs=version >= (19, 1),
                   ttl=version >= (19, 6), datetime64=version >= (20, 1),
                   ip_or_default=version >= (22, 3))


@dataclasses.dataclass(frozen=True)
class Layout:
    """Where the tables live: database, optional cluster, retention."""

    database: str
    features: Features
    cluster: str = ""
    retention_days: int = 0
    write_local: bool = False  # inserts go to this server's shard (URL write=local)
    read_local: bool = False  # queries read this server's shard only (FlowStore.own_writes)

    def table(self, name: str) -> str:
        """The table queries read (Distributed when clustered)."""
        return self.local(name) if self.read_local else f"{self.database}.{name}"

    def target(self, name: str) -> str:
        """The table inserts go to, and where the writer asks which flows it stored already."""
        return self.local(name) if self.write_local else self.table(name)

    def local(self, name: str) -> str:
        """The table that holds the data on this server."""
        return f"{self.database}.{name}_local" if self.cluster else f"{self.database}.{name}"

    @property
    def on_cluster(self) -> str:
        return f" ON CLUSTER {self.cluster}" if self.cluster else ""

    def engine(self, name: str, kind: str) -> str:
        if not self.cluster:
            return f"{kind}()"
        path = quote(f"/clickhouse/tables/{{shard}}/{self.database}/{name}_local")
        return f"Replicated{kind}({path}, '{{replica}}')"

    def column_type(self, column) -> str:
        t = f"LowCardinality({column.type})" if column.low_cardinality and self.features.low_cardinality \
            else column.type
        return f"{t} {column.codec}" if column.codec and self.features.codecs else t


# The flow seen from the connection's point of view: replies and L7 responses travel server -> client.
REVERSED = "(is_reply = 1 OR l7_type = 2)"


def client_server(side: str, column: str) -> str:
    """SQL for the client ("src" role) or server side of a flow's `column` (e.g. namespace)."""
    first, second = ("dst", "src") if side == "client" else ("src", "dst")
    return f"if({REVERSED}, {first}_{column}, {second}_{column})"
