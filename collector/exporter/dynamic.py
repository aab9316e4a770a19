"""Hubble's dynamic exporter: the exporters of a `flowLogs:` file, kept equal to the file while it
changes — an exporter added to the file starts, one removed stops (its file closed), one changed is
restarted with its new settings; the others keep writing undisturbed. No restart of the process.

The file is polled (its content, every `poll_s`), which also works for a Kubernetes ConfigMap mounted
as a volume, where the kubelet swaps a symlink instead of writing the file. A file that stops parsing
keeps the exporters running as they were (the error is logged once per change); a deleted file means
no exporters.
"""

from __future__ import annotations

import hashlib
import logging
import pathlib
import threading
from typing import Callable, Sequence

from collector.exporter.config import ExportConfig, ExportConfigError, parse_dynamic
from collector.exporter.exporter import FlowExporter
from proto.flow import flow_pb2

log = logging.getLogger(__name__)

DEFAULT_POLL_S = 2.0


class DynamicExporters:
    def __init__(self, path: str, poll_s: float = DEFAULT_POLL_S,
                 factory: Callable[[ExportConfig], FlowExporter] = FlowExporter) -> None:
        """Reads `path` now: a missing or bad file at start is an ExportConfigError."""
        self.path = pathlib.Path(path)
        self.poll_s = poll_s
        self.reloads = 0  # times the set of exporters changed, the first read included
        self._factory = factory
        self._exporters: dict[str, FlowExporter] = {}
        self._lock = threading.Lock()  # guards _exporters (offer reads it from the datapath's thread)
        self._digest = b""
        self._stop = threading.Event()
        if not self.path.is_file():
            raise ExportConfigError(f"--export-config {path}: file not found (expected a YAML file with "
                                    "a 'flowLogs' list)")
        self._apply(*self._read())
        self._thread = threading.Thread(target=self._watch, name="export-config", daemon=True)
        self._thread.start()

    @property
    def exporters(self) -> list[FlowExporter]:
        with self._lock:
            return list(self._exporters.values())

    def offer(self, flows: Sequence[flow_pb2.Flow]) -> None:
        for exporter in self.exporters:
            exporter.offer(flows)

    def reload(self) -> bool:
        """Read the file now (the watcher does this every poll_s); True when the exporters changed."""
        try:
            digest, configs = self._read()
        except ExportConfigError as err:
            log.error("%s; keeping the %d running exporters", err, len(self.exporters))
            return False
        return self._apply(digest, configs)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        with self._lock:
            exporters, self._exporters = list(self._exporters.values()), {}
        for exporter in exporters:
            exporter.stop()

    def _read(self) -> tuple[bytes, dict[str, ExportConfig]]:
        try:
            text = self.path.read_bytes()
        except FileNotFoundError:
            return b"", {}
        digest = hashlib.sha256(text).digest()  # what reload() applies, even if the file changes again
        if digest == self._digest:
            return digest, self._configs()
        try:
            return digest, parse_dynamic(text.decode(errors="replace"), str(self.path))
        except ExportConfigError:
            self._digest = digest  # report a broken file once, not at every poll
            raise

    def _configs(self) -> dict[str, ExportConfig]:
        with self._lock:
            return {name: e.config for name, e in self._exporters.items()}

    def _apply(self, digest: bytes, configs: dict[str, ExportConfig]) -> bool:
        self._digest = digest
        current = self._configs()
        if configs == current:
            return False
        gone = [name for name, config in current.items() if configs.get(name) != config]
        with self._lock:
            stopped = [self._exporters.pop(name) for name in gone]
        for exporter in stopped:  # before a changed one restarts on the same file
            exporter.stop()
        started = {}
        for name, config in configs.items():
            if current.get(name) != config:
                try:
                    started[name] = self._factory(config)
                except OSError as err:  # e.g. a directory it may not write: the others still start
                    log.error("exporter %s: cannot open %s: %s", name, config.file_path, err)
        with self._lock:
            self._exporters.update(started)
        self.reloads += 1
        log.info("export config %s: %d exporters (started %s; stopped %s)", self.path, len(configs),
                 ", ".join(sorted(started)) or "none",
                 ", ".join(sorted(set(gone) - set(started))) or "none")
        return True

    def _watch(self) -> None:
        # A change is applied once two polls in a row read the same content: an editor that truncates
        # and rewrites the file is not caught half-way (an empty file would stop every exporter).
        seen = self._digest
        while not self._stop.wait(self.poll_s):
            digest = self._file_digest()
            if digest != self._digest and digest == seen:
                self.reload()
            seen = digest

    def _file_digest(self) -> bytes:
        try:
            return hashlib.sha256(self.path.read_bytes()).digest()
        except FileNotFoundError:
            return b""
