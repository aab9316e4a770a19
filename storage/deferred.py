"""DeferredStore: a FlowStore that may be down when its user starts.

A relay or UI that exits when ClickHouse is not up yet crash-loops through every rollout of the database.
Instead they start with a DeferredStore: it connects and migrates on first use, and while the server does
not answer, every use raises StorageUnavailable (at most one connection attempt per `retry_s`). The
FlowWriter already spools batches and retries on StorageUnavailable, so flows of the outage wait on disk
and are stored once, in order, when the server comes; queries fail with a message the caller shows.
"""

from __future__ import annotations

import logging
import threading
import time

from storage.errors import StorageUnavailable
from storage.open import open_store
from storage.store import FlowStore
from storage.url import parse_url

log = logging.getLogger(__name__)


class DeferredStore:
    """Stands for `open_store(url)` + `migrate()` (or `require_schema()`), done on first use. Every FlowStore method and
    attribute is reachable through it; `available` and `error` tell the state without connecting."""

    def __init__(self, url: str, retry_s: float = 2.0, migrate: bool = True, clock=time.monotonic) -> None:
        self.url = parse_url(url)  # a malformed URL is a StorageURLError now, not at first use
        self._text = url
        self._migrate = migrate  # False for readers (the UI): they check the schema, never change it
        self.retry_s = retry_s
        self.error = ""
        self._clock = clock
        self._store: FlowStore | None = None
        self._next_attempt = 0.0
        self._lock = threading.Lock()

    @property
    def available(self) -> bool:
        return self._store is not None

    def connect(self) -> FlowStore:
        """The store, opened and migrated; StorageUnavailable while the server does not answer."""
        store = self._store
        if store is not None:
            return store
        with self._lock:
            if self._store is not None:
                return self._store
            if self._clock() < self._next_attempt:
                raise StorageUnavailable(self.error)
            try:
                store = open_store(self._text)
                if self._migrate:
                    store.migrate()
                else:
                    store.require_schema()
            except StorageUnavailable as err:
                self._next_attempt = self._clock() + self.retry_s
                if not self.error:
                    log.warning("storage unavailable, trying again every %g s: %s", self.retry_s, err)
                self.error = str(err)
                raise
            if self.error:
                log.info("storage %s: available again", self.url.redacted())
            self.error = ""
            self._store = store
            return store

    def __getattr__(self, name: str):
        # Only reached for what this class does not define: the FlowStore's own methods and attributes.
        return getattr(self.connect(), name)
