"""Storage errors a user can act on. Each message names the store (URL without password) or the spool."""

from common.errors import UserError
from common.timeparse import TimeError


class StorageError(UserError):
    """The flow store cannot be used: bad URL, unreachable server, wrong credentials, bad query input."""


class StorageURLError(StorageError):
    """A storage URL that cannot be parsed."""


class StorageUnavailable(StorageError):
    """The store did not answer (server down, connection refused or reset). The writer retries these."""


class ShardUnavailable(StorageUnavailable):
    """The server answered, but a shard of its cluster did not (a query or insert through a Distributed
    table). The message names the shard."""


class SpoolFullError(StorageError):
    """The writer's local spool cannot take more data: flows stay in memory and are not yet stored."""


class StorageTimeError(StorageError, TimeError):
    """A query's time argument is not a time (common.timeparse.to_ns raises it for storage)."""
