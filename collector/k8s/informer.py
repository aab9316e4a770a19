"""List + watch one Kubernetes resource with informer semantics.

The loop lists once (replacing the consumer's view), then watches from the list's resourceVersion,
advancing it with every event and bookmark. A 410 Gone (the version fell out of the server's watch
cache) relists; a dropped connection resumes the watch from the last version; errors back off
exponentially so a broken API server never turns into a busy loop.
"""

from __future__ import annotations

import json
import logging
import threading
from dataclasses import dataclass
from typing import Any, Callable

from kubernetes import watch
from kubernetes.client.exceptions import ApiException

from common.backoff import Backoff

log = logging.getLogger(__name__)

KubeObject = dict[str, Any]
HTTP_FORBIDDEN = 403
HTTP_GONE = 410


@dataclass
class InformerStats:
    lists: int = 0
    watches: int = 0
    events: int = 0
    gone: int = 0
    errors: int = 0
    last_error: str = ""


class Informer:
    """Keeps `on_replace(items)` / `on_event(type, obj)` in step with one resource of the API server.

    `list_fn` is a kubernetes client list function (e.g. CoreV1Api.list_pod_for_all_namespaces); objects
    reach the consumer as plain Kubernetes JSON dicts.
    """

    def __init__(self, resource: str, list_fn: Callable[..., Any],
                 on_replace: Callable[[list[KubeObject]], None],
                 on_event: Callable[[str, KubeObject], None],
                 watch_timeout_seconds: int = 300, backoff: Backoff | None = None) -> None:
        self.resource = resource
        self._list_fn = list_fn
        self._on_replace = on_replace
        self._on_event = on_event
        self._watch_timeout = watch_timeout_seconds
        self._backoff = backoff or Backoff()
        self._watch: watch.Watch | None = None
        self.resource_version: str | None = None
        self.stats = InformerStats()
        self.synced = threading.Event()

    def run(self, stop: threading.Event) -> None:
        while not stop.is_set():
            try:
                if self.resource_version is None:
                    self._list()
                self._watch_once(stop)
                self._backoff.reset()
            except ApiException as err:
                if err.status == HTTP_GONE:
                    self.stats.gone += 1
                    log.info("%s: resourceVersion %s expired (410 Gone); relisting",
                             self.resource, self.resource_version)
                    self.resource_version = None
                    continue
                self._failed(stop, _api_error_message(self.resource, err))
            except Exception as err:  # connection refused, reset, timeouts: resume after a pause
                self._failed(stop, f"{self.resource}: {type(err).__name__}: {err}")

    def stop(self) -> None:
        if self._watch is not None:
            self._watch.stop()

    def _list(self) -> None:
        response = self._list_fn(_preload_content=False)
        body = json.loads(response.data)
        self.stats.lists += 1
        self._on_replace(body.get("items") or [])
        self.resource_version = body["metadata"]["resourceVersion"]
        self.synced.set()

    def _watch_once(self, stop: threading.Event) -> None:
        self._watch = watch.Watch()
        self.stats.watches += 1
        for event in self._watch.stream(self._list_fn, resource_version=self.resource_version,
                                        allow_watch_bookmarks=True,
                                        timeout_seconds=self._watch_timeout):
            if stop.is_set():
                self._watch.stop()
                return
            # raw_object is the server's JSON; the client's ERROR/410 handling needs deserialize on.
            kind, obj = event["type"], event["raw_object"]
            version = obj.get("metadata", {}).get("resourceVersion")
            if kind != "BOOKMARK":
                self.stats.events += 1
                self._on_event(kind, obj)
            if version:
                self.resource_version = version

    def _failed(self, stop: threading.Event, message: str) -> None:
        self.stats.errors += 1
        self.stats.last_error = message
        delay = self._backoff.next_delay()
        log.warning("%s; retrying in %.1fs", message, delay)
        stop.wait(delay)


class InformerGroup:
    """Informers that start together, each on its own daemon thread, and stop together."""

    def __init__(self, informers: list[Informer]) -> None:
        self.informers = informers
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    def start(self) -> None:
        for informer in self.informers:
            thread = threading.Thread(target=informer.run, args=(self._stop,),
                                      name=f"k8s-{informer.resource}", daemon=True)
            thread.start()
            self._threads.append(thread)

    def wait_synced(self, timeout: float) -> bool:
        return all(i.synced.wait(timeout) for i in self.informers)

    def stop(self) -> None:
        self._stop.set()
        for informer in self.informers:
            informer.stop()
        for thread in self._threads:
            thread.join(timeout=1)  # daemon threads; a watch blocked in a read ends on its own


def _api_error_message(resource: str, err: ApiException) -> str:
    if err.status == HTTP_FORBIDDEN:
        return (f"no permission to list/watch {resource} (403 Forbidden): grant get, list and watch "
                f"on {resource} to the collector's service account (deploy/k8s/base/rbac.yaml)")
    return f"{resource}: API server answered {err.status} {err.reason}"
