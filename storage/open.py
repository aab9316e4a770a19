"""open_store(url): parse the URL, connect the backend, return a FlowStore."""

from __future__ import annotations

from storage.store import FlowStore
from storage.url import DEFAULT_URL, parse_url


def open_store(url: str = DEFAULT_URL) -> FlowStore:
    """Connects (chdb opens/creates its directory; a server is asked its version). Raises
    StorageURLError for a malformed URL, StorageError/StorageUnavailable naming the store otherwise.
    Call `migrate()` once before writing."""
    parsed = parse_url(url)
    if parsed.scheme == "chdb":
        from storage.chdb_backend import ChdbBackend
        return FlowStore(parsed, ChdbBackend(parsed.path))
    from storage.server_backend import ServerBackend
    return FlowStore(parsed, ServerBackend(parsed))
