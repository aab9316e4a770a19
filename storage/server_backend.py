"""A ClickHouse server: queries over the native protocol (clickhouse-driver), flows inserted over its HTTP
interface as ready Native rows (insert_native; storage.ingest.native makes them), columnar inserts
through clickhouse-driver for the rest.

clickhouse-driver's Client and http.client connections are not thread-safe: each thread (the writer,
query threads of the relay or UI) gets its own. All SQL names tables with their database, so connecting
never depends on the database existing.
"""

from __future__ import annotations

import base64
import http.client
import re
import ssl
import threading
import urllib.parse
from typing import Sequence

from storage.backend import Column
from storage.cluster import UNREACHABLE_CODES, unreachable
from storage.errors import ShardUnavailable, StorageError, StorageUnavailable
from storage.url import StorageURL

# Server error codes that mean "who you are" rather than "what you sent".
_AUTH_CODES = {192, 193, 194, 516}


def _first_line(err: Exception) -> str:
    text = str(getattr(err, "message", "") or err).strip()
    return text.splitlines()[0] if text else type(err).__name__


class ServerBackend:
    def __init__(self, url: StorageURL) -> None:
        self.url = url
        self.description = url.redacted()
        self._local = threading.local()
        self._settings: dict[str, object] = {}
        self._shards: list[tuple] | None = None  # system.clusters rows of url.cluster, read once
        (version,), = self.rows("SELECT version()")
        self.version = tuple(int(x) for x in version.split(".")[:3])
        if url.cluster:
            # An insert into a Distributed table returns once every shard has its rows: only then may
            # the writer count the batch as stored.
            self._settings["insert_distributed_sync"] = 1
        if url.skip_unavailable_shards:
            self._settings["skip_unavailable_shards"] = 1
        if self.version < (19, 0):
            # 18.x has LowCardinality only behind this switch.
            self._settings["allow_experimental_low_cardinality_type"] = 1

    def _client(self):
        client = getattr(self._local, "client", None)
        if client is None:
            from clickhouse_driver import Client
            u = self.url
            client = Client(u.host, port=u.port, user=u.user, password=u.password, database="default",
                            secure=u.secure, verify=u.verify, connect_timeout=u.connect_timeout,
                            send_receive_timeout=300, settings={"strings_as_bytes": False})
            self._local.client = client
        return client

    def _run(self, sql: str, data=None, binary: bool = False, **kwargs):
        from clickhouse_driver import errors
        settings = dict(self._settings)
        if binary:
            settings["strings_as_bytes"] = True
        client = self._client()
        try:
            if data is None:
                return client.execute(sql, settings=settings, **kwargs)
            return client.execute(sql, data, settings=settings, **kwargs)
        except errors.ServerException as err:
            if err.code in _AUTH_CODES:
                self._drop_client()
                raise StorageError(f"{self.description}: authentication failed for user "
                                   f"{self.url.user!r} (wrong user or password?): {_first_line(err)}") \
                    from None
            shard = self._shard_error(err.code, str(err))
            if shard is not None:
                raise shard from None
            raise StorageError(f"{self.description}: {_first_line(err)}") from None
        except (errors.NetworkError, errors.SocketTimeoutError, EOFError, OSError) as err:
            self._drop_client()
            raise StorageUnavailable(f"{self.description}: server unreachable: {_first_line(err)}") \
                from None
        except errors.Error as err:
            self._drop_client()
            raise StorageUnavailable(f"{self.description}: {_first_line(err)}") from None

    def _shard_error(self, code: int, message: str) -> ShardUnavailable | None:
        """A shard of the cluster that did not answer: ShardUnavailable naming it (the writer spools
        and retries, the JSON API answers 503), or None for any other error."""
        if not self.url.cluster or code not in UNREACHABLE_CODES:
            return None
        if self._shards is None:
            try:
                self._shards = self._client().execute(
                    "SELECT shard_num, host_name, host_address, port FROM system.clusters "
                    "WHERE cluster = %(cluster)s", {"cluster": self.url.cluster})
            except Exception:  # the message then says "a shard"; asked again next time
                self._drop_client()
        down, reason = unreachable(message, self._shards or ())
        return ShardUnavailable(
            f"{self.description}: cluster {self.url.cluster}: {', '.join(down) or 'a shard'} unreachable"
            f"{f' ({reason})' if reason else ''}; queries through the Distributed tables need every shard "
            "(skip_unavailable_shards=1 in the storage URL answers from the others)")

    def _drop_client(self) -> None:
        client = getattr(self._local, "client", None)
        self._local.client = None
        if client is not None:
            try:
                client.disconnect()
            except Exception:
                pass

    def _http(self) -> http.client.HTTPConnection:
        conn = getattr(self._local, "http", None)
        if conn is None:
            u = self.url
            if u.secure:
                context = ssl.create_default_context()
                if not u.verify:
                    context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
                conn = http.client.HTTPSConnection(u.host, u.http_port, timeout=300, context=context)
            else:
                conn = http.client.HTTPConnection(u.host, u.http_port, timeout=300)
            self._local.http = conn
        return conn

    def insert_native(self, table: str, columns: Sequence[str], data: bytes) -> None:
        """POSTs rows in ClickHouse's Native format to the server's HTTP interface."""
        query = f"INSERT INTO {table} ({', '.join(columns)}) FORMAT Native"
        params = urllib.parse.urlencode({"query": query, **self._settings})
        secret = base64.b64encode(f"{self.url.user}:{self.url.password}".encode()).decode()
        where = f"{self.description} (HTTP port {self.url.http_port})"
        conn = self._http()
        try:
            conn.request("POST", f"/?{params}", body=data, headers={"Authorization": f"Basic {secret}"})
            response = conn.getresponse()
            answer = response.read()
        except (OSError, http.client.HTTPException) as err:
            self._local.http = None
            conn.close()
            raise StorageUnavailable(f"{where}: server unreachable: {_first_line(err)}") from None
        if response.status == 200:
            return
        message = answer.decode("utf-8", "replace").strip()
        text = message.splitlines()[0] if message else f"HTTP {response.status}"
        if response.status in (401, 403) or any(f"Code: {code}," in text for code in _AUTH_CODES):
            raise StorageError(f"{where}: authentication failed for user {self.url.user!r} (wrong user or "
                               f"password?): {text}")
        if response.status >= 500 and "Code:" not in text:
            raise StorageUnavailable(f"{where}: {text}")
        code = re.match(r"Code: (\d+)", text)
        shard = self._shard_error(int(code.group(1)), message) if code else None
        if shard is not None:
            raise shard
        raise StorageError(f"{where}: {text}")

    def execute(self, sql: str) -> None:
        self._run(sql)

    def rows(self, sql: str, binary: bool = False) -> list[tuple]:
        return self._run(sql, binary=binary)

    def insert(self, table: str, columns: Sequence[Column], data: dict[str, list]) -> int:
        names = ", ".join(c.name for c in columns)
        self._run(f"INSERT INTO {table} ({names}) VALUES", [data[c.name] for c in columns],
                  columnar=True)
        return len(data[columns[0].name]) if columns else 0

    def close(self) -> None:
        self._drop_client()
        conn = getattr(self._local, "http", None)
        self._local.http = None
        if conn is not None:
            conn.close()
