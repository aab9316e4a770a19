"""Numeric security identities from label sets, as in Cilium: the unit of policy is "who" (labels),
not "where" (IP).

Reserved identities match Hubble's numbers. Allocated identities are derived from a hash of the label
set, so every collector in a cluster (and every restart) gives the same labels the same number without
a shared allocator; the rare hash collision is resolved by probing, and the table is persisted so that
resolution is stable across restarts too.
"""

from __future__ import annotations

import hashlib
import json
import os
import pathlib
import threading
from typing import Iterable

RESERVED_HOST = 1
RESERVED_WORLD = 2
RESERVED_UNMANAGED = 3
RESERVED_HEALTH = 4
RESERVED_INIT = 5
RESERVED_REMOTE_NODE = 6
RESERVED_KUBE_APISERVER = 7
RESERVED_LABELS = {
    RESERVED_HOST: ("reserved:host",),
    RESERVED_WORLD: ("reserved:world",),
    RESERVED_UNMANAGED: ("reserved:unmanaged",),
    RESERVED_HEALTH: ("reserved:health",),
    RESERVED_INIT: ("reserved:init",),
    RESERVED_REMOTE_NODE: ("reserved:remote-node",),
    RESERVED_KUBE_APISERVER: ("reserved:kube-apiserver",),
}
FIRST_ALLOCATED = 256
# 24 bits, like Cilium's cluster-local identity space with cluster id bits left out.
IDENTITY_SPACE = 1 << 24


class IdentityAllocator:
    """Label set -> identity, and back. Thread-safe; persisted to `state_file` when given."""

    def __init__(self, state_file: str | os.PathLike[str] | None = None) -> None:
        self._path = pathlib.Path(state_file) if state_file else None
        self._lock = threading.Lock()
        self._by_labels: dict[tuple[str, ...], int] = {v: k for k, v in RESERVED_LABELS.items()}
        self._by_id: dict[int, tuple[str, ...]] = dict(RESERVED_LABELS)
        if self._path and self._path.exists():
            for entry in json.loads(self._path.read_text()):
                labels = tuple(entry["labels"])
                self._by_labels[labels] = entry["id"]
                self._by_id[entry["id"]] = labels

    def identity_for(self, labels: Iterable[str]) -> int:
        key = tuple(sorted(labels))
        known = self._by_labels.get(key)
        if known is not None:
            return known
        with self._lock:
            if key in self._by_labels:
                return self._by_labels[key]
            candidate = _hash_identity(key)
            while candidate in self._by_id:
                candidate = FIRST_ALLOCATED + (candidate + 1 - FIRST_ALLOCATED) % (
                    IDENTITY_SPACE - FIRST_ALLOCATED)
            self._by_labels[key] = candidate
            self._by_id[candidate] = key
            self._save()
            return candidate

    def labels_for(self, identity: int) -> tuple[str, ...] | None:
        return self._by_id.get(identity)

    def _save(self) -> None:
        if not self._path:
            return
        entries = [{"id": i, "labels": list(l)} for i, l in self._by_id.items() if i >= FIRST_ALLOCATED]
        self._path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self._path.with_suffix(".tmp")
        tmp.write_text(json.dumps(entries))
        tmp.replace(self._path)


def _hash_identity(labels: tuple[str, ...]) -> int:
    digest = hashlib.sha256("\n".join(labels).encode()).digest()
    return FIRST_ALLOCATED + int.from_bytes(digest[:4], "big") % (IDENTITY_SPACE - FIRST_ALLOCATED)
