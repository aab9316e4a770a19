"""Storage URLs: `chdb:///var/lib/flowscope/db` (embedded, the default) or
`clickhouse://user:pass@host:9000/flowscope?secure=1` (a server over the native protocol).

Query parameters (both kinds unless noted): `database=` (chdb; for servers the path names it),
`retention_days=N` (0 keeps everything), `cluster=NAME` (server: create tables ON CLUSTER, Distributed
over sharded ReplicatedMergeTree), `secure=1`, `verify=0`, `connect_timeout=S` (server), `http_port=N`
(server: its HTTP interface, which takes the flows; default 8123, 8443 with secure=1).

With `cluster=NAME`: `write=local` makes this store insert into its own server's shard-local tables
(`flows_local`: one relay per shard, no forwarding through the Distributed table; reads still go through
the Distributed tables and see every shard), `write=distributed` (the default) inserts through the
Distributed table, which spreads rows over the shards by uuid. `skip_unavailable_shards=1`: reads answer
from the shards that are up instead of failing while one is down (FlowStore.status() names those down).
See docs/scaling.md.
"""

from __future__ import annotations

import dataclasses
import re
import urllib.parse

from storage.errors import StorageURLError

DEFAULT_URL = "chdb:///var/lib/flowscope/db"
DEFAULT_DATABASE = "flowscope"
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,63}")
_PARAMS = {"chdb": {"database", "retention_days"},
           "clickhouse": {"retention_days", "cluster", "secure", "verify", "connect_timeout", "http_port", "write",
                          "skip_unavailable_shards"}}
_WRITES = ("distributed", "local")


@dataclasses.dataclass(frozen=True)
class StorageURL:
    scheme: str  # "chdb" or "clickhouse"
    database: str
    path: str = ""  # chdb data directory
    host: str = ""
    port: int = 9000
    http_port: int = 8123  # the server's HTTP interface: flows are inserted there (FORMAT Native)
    user: str = "default"
    password: str = ""
    secure: bool = False
    verify: bool = True
    connect_timeout: float = 5.0
    cluster: str = ""
    retention_days: int = 0
    write_local: bool = False  # cluster: insert into this server's shard-local tables (write=local)
    skip_unavailable_shards: bool = False  # cluster: reads answer from the shards that are up

    def redacted(self) -> str:
        """The URL for messages and logs: never the password."""
        if self.scheme == "chdb":
            return f"chdb://{self.path}?database={self.database}"
        secret = ":***" if self.password else ""
        return f"clickhouse://{self.user}{secret}@{self.host}:{self.port}/{self.database}"


def _flag(url: str, name: str, value: str) -> bool:
    if value.lower() in ("1", "true", "yes"):
        return True
    if value.lower() in ("0", "false", "no"):
        return False
    raise StorageURLError(f"storage URL {url!r}: {name}={value!r}, expected 1 or 0")


def _number(url: str, name: str, value: str, kind=int):
    try:
        number = kind(value)
    except ValueError:
        number = -1
    if number < 0:
        raise StorageURLError(f"storage URL {url!r}: {name}={value!r}, expected a non-negative number")
    return number


def _database(url: str, name: str) -> str:
    if not _NAME.fullmatch(name):
        raise StorageURLError(f"storage URL {url!r}: database {name!r} is not a valid name "
                              "(letters, digits and _, starting with a letter or _)")
    return name


def parse_url(url: str) -> StorageURL:
    """Parses a storage URL; raises StorageURLError naming the URL and what was expected."""
    shown = re.sub(r"(//[^:/@]*:)[^@/]*@", r"\1***@", url)  # never echo a password
    expected = "expected chdb:///path/to/dir or clickhouse://user:pass@host:port/database"
    if not url or "://" not in url:
        raise StorageURLError(f"storage URL {shown!r} is not a URL: {expected}")
    try:
        parts = urllib.parse.urlsplit(url)
        port = parts.port
    except ValueError as err:
        raise StorageURLError(f"storage URL {shown!r}: {err}: {expected}") from None
    scheme = parts.scheme.lower()
    if scheme not in _PARAMS:
        raise StorageURLError(f"storage URL {shown!r}: unknown scheme {parts.scheme!r}: {expected}")
    params: dict[str, str] = {}
    for key, value in urllib.parse.parse_qsl(parts.query, keep_blank_values=True, strict_parsing=False):
        if key not in _PARAMS[scheme]:
            raise StorageURLError(f"storage URL {shown!r}: unknown parameter {key!r}, expected one of "
                                  f"{', '.join(sorted(_PARAMS[scheme]))}")
        params[key] = value
    retention = _number(shown, "retention_days", params.get("retention_days", "0"))
    if scheme == "chdb":
        path = (parts.netloc + parts.path) if parts.netloc else parts.path
        if not path or not path.startswith("/"):
            raise StorageURLError(f"storage URL {shown!r}: expected an absolute directory, "
                                  "e.g. chdb:///var/lib/flowscope/db")
        return StorageURL("chdb", _database(shown, params.get("database", DEFAULT_DATABASE)),
                          path=path.rstrip("/") or "/", retention_days=retention)
    if not parts.hostname:
        raise StorageURLError(f"storage URL {shown!r}: missing host: {expected}")
    database = parts.path.strip("/") or DEFAULT_DATABASE
    if "/" in database:
        raise StorageURLError(f"storage URL {shown!r}: the path must be one database name")
    secure = _flag(shown, "secure", params.get("secure", "0"))
    cluster = params.get("cluster", "")
    write = params.get("write", "distributed")
    if write not in _WRITES:
        raise StorageURLError(f"storage URL {shown!r}: write={write!r}, expected local or distributed")
    skip = _flag(shown, "skip_unavailable_shards", params.get("skip_unavailable_shards", "0"))
    if (write == "local" or skip) and not cluster:
        raise StorageURLError(f"storage URL {shown!r}: "
                              f"{'write=local' if write == 'local' else 'skip_unavailable_shards'} "
                              "needs cluster=NAME (the shards of a cluster)")
    return StorageURL(
        "clickhouse", _database(shown, database), host=parts.hostname,
        port=port or (9440 if secure else 9000),
        http_port=_number(shown, "http_port", params.get("http_port", "8443" if secure else "8123")),
        user=urllib.parse.unquote(parts.username or "default"),
        password=urllib.parse.unquote(parts.password or ""), secure=secure,
        verify=_flag(shown, "verify", params.get("verify", "1")),
        connect_timeout=_number(shown, "connect_timeout", params.get("connect_timeout", "5"), float),
        cluster=cluster, retention_days=retention, write_local=write == "local",
        skip_unavailable_shards=skip)
