"""FlowWriter: batches flows into the store from one background thread and never loses one.

write() (flow messages) and write_bytes() (serialized flows with their time and uuid, as the relay
carries them: no parse, no serialize) only deduplicate (by uuid, over a window of recent flows) and
buffer. The writer thread cuts
batches by rows, bytes or age, inserts them column-wise, and when the store is down or refuses a batch
it spools the batch to disk and retries with exponential backoff, replaying the spool in order before
any newer batch. A replayed batch first asks the store which of its uuids are already stored (an insert
cut off mid-way may have landed), so a retry never duplicates a flow.

The writer thread works in two stages: while ClickHouse inserts one batch (chdb releases the GIL), an
encoder thread serializes and encodes the next queued batch. Batches are still inserted one at a time,
in queue order, and leave the queue only once stored or spooled, so ordering and exactly-once are
those of a single thread.

When the store falls behind, batches still waiting their turn (the third in the queue and later: the
first is being inserted, the second encoded) are merged, up to `max_insert_rows` per insert: an insert
has a fixed cost whatever its size (the embedded engine plans the ingest view's query for every insert,
~0.3 s), so a backlog is worked off in fewer, larger inserts, while a store that keeps up still gets
small, prompt batches.

Backpressure: write() blocks while more than `max_pending_rows` flows wait in memory. When the spool
cannot take a batch (its limit or its disk is full) the batch stays in memory and write()/flush()/close()
raise SpoolFullError naming the spool and how many flows wait — nothing is dropped silently.
"""

from __future__ import annotations

import collections
import concurrent.futures
import dataclasses
import logging
import threading
import time
from typing import Callable, Iterable, Sequence, Union

from proto.flow import flow_pb2
from storage.errors import SpoolFullError, StorageError, StorageUnavailable
from storage.ingest.insert import EncodedFlows
from storage.store import FlowStore
from storage.writer.check import malformed
from storage.writer.spool import Spool

log = logging.getLogger(__name__)
# What a batch holds: flows given to write() as messages, or to write_bytes() as (time_ns, uuid, bytes).
BatchItem = Union[flow_pb2.Flow, tuple]
Encoded = tuple[Union[Sequence[flow_pb2.Flow], None], list[bytes], Union[EncodedFlows, StorageError]]


@dataclasses.dataclass(frozen=True)
class WriterStats:
    accepted: int  # flows taken by write() (duplicates excluded)
    duplicates: int  # flows dropped by write() because their uuid was seen recently
    written: int  # flows confirmed stored
    batches_written: int
    pending: int  # flows in memory, neither stored nor spooled
    spool_batches: int  # batches waiting on disk
    spool_bytes: int
    retries: int  # failed insert attempts
    rejected_batches: int  # batches the store refused repeatedly or damaged on disk, kept in <spool>/rejected/
    last_error: str
    last_insert_seconds: float = 0.0  # duration of the latest successful insert (write latency)
    malformed: int = 0  # flows given to write_bytes whose bytes were no Flow, left out


def _fresh(items: Sequence[BatchItem], uuids: list[str], current: set[str],
           previous: set[str]) -> tuple[Sequence[BatchItem], int]:
    """(the items whose uuid is in neither generation, how many were duplicates), adding their
    uuids to `current`; an item without uuid is always fresh. The common case (every uuid new and
    distinct) is decided by set operations in C, not a Python step per flow."""
    batch = set(uuids)
    if len(batch) == len(uuids) and "" not in batch and batch.isdisjoint(current) and batch.isdisjoint(previous):
        current |= batch
        return items, 0
    fresh, duplicates = [], 0
    for item, uid in zip(items, uuids):
        if uid:
            if uid in current or uid in previous:
                duplicates += 1
                continue
            current.add(uid)
        fresh.append(item)
    return fresh, duplicates


def default_spool_dir(store: FlowStore) -> str:
    u = store.url
    if u.scheme == "chdb":
        return f"{u.path}.spool/{u.database}"
    return f"/var/lib/flowscope/spool/{u.host}-{u.port}-{u.database}"


class FlowWriter:
    def __init__(self, store: FlowStore, *, batch_rows: int = 50_000, batch_bytes: int = 32 << 20,
                 flush_interval: float = 1.0, spool_dir: str | None = None,
                 spool_max_bytes: int = 1 << 30, max_pending_rows: int = 500_000,
                 retry_initial: float = 0.2, retry_max: float = 10.0, reject_after: int = 5,
                 dedup_window: int = 200_000, max_insert_rows: int = 200_000) -> None:
        self.store = store
        self.batch_rows, self.batch_bytes = batch_rows, batch_bytes
        self.max_insert_rows = max(batch_rows, max_insert_rows)
        self.flush_interval = flush_interval
        self.max_pending_rows = max_pending_rows
        self.retry_initial, self.retry_max, self.reject_after = retry_initial, retry_max, reject_after
        self.spool = Spool(spool_dir or default_spool_dir(store), spool_max_bytes)
        self._cond = threading.Condition()
        self._buffer: list[BatchItem] = []
        self._buffer_bytes = 0
        self._buffer_since = 0.0
        self._queue: collections.deque[list[BatchItem]] = collections.deque()
        self._queued_rows = 0
        self._busy = False  # the thread holds a batch taken from the queue
        self._seen: set[str] = set()
        self._seen_previous: set[str] = set()
        self._dedup_window = dedup_window
        self._flow_size = 500.0  # average serialized bytes per flow, updated per batch
        self._accepted = self._duplicates = self._written = self._batches = 0
        self._retries = self._rejected = self._head_failures = self._malformed = 0
        self._retry_at = 0.0
        self._last_insert_seconds = 0.0
        # called with (seconds, rows) after every successful insert: write-latency metrics
        self.insert_hooks: list[Callable[[float, int], None]] = []
        self._backoff = retry_initial
        self._last_error = ""
        self._spool_error: SpoolFullError | None = None
        self._stopping = False
        # The encoder stage: at most one batch (the next in the queue) encoded ahead.
        self._encoder = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="flowscope-encoder")
        self._ahead: tuple[list[BatchItem], concurrent.futures.Future] | None = None
        if len(self.spool):
            log.warning("storage writer: %d spooled batches (%d bytes) in %s will be replayed",
                        len(self.spool), self.spool.bytes, self.spool.dir)
        self._thread = threading.Thread(target=self._run, name="flowscope-writer", daemon=True)
        self._thread.start()

    # ----- caller side ---------------------------------------------------------------------------
    def write(self, flows: Iterable[flow_pb2.Flow]) -> int:
        """Buffers the flows not seen before (by uuid); returns how many were taken. Blocks while too
        many flows wait in memory. Raises SpoolFullError (taking none of these flows) while a batch
        cannot be stored nor spooled."""
        flows = list(flows)
        return self._take(flows, [f.uuid for f in flows])

    def write_bytes(self, flows: Sequence[tuple[int, str, bytes]]) -> int:
        """write() for serialized flows: (time_ns, uuid, flow_bytes) each (longer tuples, such as the
        relay's entries, give their first three), stored as they are: the store's encoding needs no
        parsed flow. A flow whose bytes do not parse is left out and counted (stats().malformed)."""
        return self._take(flows, [f[1] for f in flows])

    def _take(self, items: Sequence[BatchItem], uuids: list[str]) -> int:
        with self._cond:
            if self._spool_error is not None:
                raise self._spool_error
            while self._pending() >= self.max_pending_rows and not self._stopping:
                self._cond.wait(0.5)
                if self._spool_error is not None:
                    raise self._spool_error
            if self._stopping:
                raise StorageError("storage writer is closed")
            # Dedup against two generations of uuids (current, previous): no per-flow bookkeeping
            # beyond one set insert; a generation is dropped when the next one is full.
            current, previous = self._seen, self._seen_previous
            fresh, duplicates = _fresh(items, uuids, current, previous)
            if len(current) >= self._dedup_window // 2:
                self._seen_previous, self._seen = current, set()
            taken = len(fresh)
            self._duplicates += duplicates
            self._add(fresh)
            self._accepted += taken
        return taken

    def flush(self, timeout: float | None = None) -> None:
        """Returns when every flow taken so far is stored or spooled on disk."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            self._cut()
            while self._queue or self._busy:
                if self._spool_error is not None:
                    raise self._spool_error
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    raise StorageError(f"storage writer: flush timed out with {self._pending()} flows "
                                       "waiting")
                self._cond.wait(0.2 if left is None else min(left, 0.2))

    def wait_stored(self, timeout: float) -> bool:
        """True once everything taken is in the store (memory and spool empty) — for tests and tools."""
        deadline = time.monotonic() + timeout
        with self._cond:
            self._cut()
            while (len(self.spool) or self._queue or self._busy) and time.monotonic() < deadline:
                self._retry_at = min(self._retry_at, time.monotonic() + 0.2)
                self._cond.notify_all()
                self._cond.wait(0.1)
            return not (len(self.spool) or self._queue or self._busy)

    def close(self, timeout: float | None = None) -> None:
        """Flushes, makes one last attempt at the spool, stops the thread. Spooled batches stay on disk
        for the next writer; raises SpoolFullError if flows remain only in memory. Waits as long as
        inserts take by default (a store that is down makes batches spool at once, so this returns)."""
        try:
            self.flush(timeout)
        except BaseException:
            # Flows are still only in memory: the thread keeps trying while the process lives.
            self._stop(5.0)
            raise
        self._stop(timeout)
        if len(self.spool):
            log.warning("storage writer closed with %d batches (%d bytes) spooled in %s",
                        len(self.spool), self.spool.bytes, self.spool.dir)

    def _stop(self, timeout: float | None) -> None:
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        self._thread.join(timeout)
        if not self._thread.is_alive():
            self._encoder.shutdown(wait=False)
            self.spool.close()

    def stats(self) -> WriterStats:
        with self._cond:
            return WriterStats(self._accepted, self._duplicates, self._written, self._batches,
                               self._pending(), len(self.spool), self.spool.bytes, self._retries,
                               self._rejected, self._last_error, self._last_insert_seconds, self._malformed)

    def __enter__(self) -> "FlowWriter":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # ----- internals (under self._cond unless noted) -----------------------------------------------
    def _pending(self) -> int:
        return len(self._buffer) + self._queued_rows

    def _add(self, flows: list[BatchItem]) -> None:
        """Buffers flows, cutting batches at batch_rows or (estimated) batch_bytes."""
        while flows:
            if not self._buffer:
                self._buffer_since = time.monotonic()
            # Bytes are estimated from the average serialized size of the last batch (exact sizes
            # per flow would cost more than the rest of write()).
            by_bytes = max(1, int((self.batch_bytes - self._buffer_bytes) / self._flow_size))
            room = min(self.batch_rows - len(self._buffer), by_bytes)
            part, flows = flows[:room], flows[room:]
            self._buffer.extend(part)
            self._buffer_bytes += len(part) * self._flow_size
            if len(self._buffer) >= self.batch_rows or self._buffer_bytes >= self.batch_bytes:
                self._cut()

    def _cut(self) -> None:
        if self._buffer:
            # Only the third batch on is merged into: the first is being inserted and the second
            # may be with the encoder; neither may change under them.
            queue = self._queue
            if len(queue) >= 3 and len(queue[-1]) + len(self._buffer) <= self.max_insert_rows:
                queue[-1].extend(self._buffer)
            else:
                queue.append(self._buffer)
            self._queued_rows += len(self._buffer)
            self._buffer, self._buffer_bytes = [], 0
            self._cond.notify_all()

    def _run(self) -> None:
        while True:
            with self._cond:
                while True:
                    if self._buffer and time.monotonic() - self._buffer_since >= self.flush_interval:
                        self._cut()
                    spool_due = len(self.spool) and time.monotonic() >= self._retry_at
                    if self._queue or spool_due or (self._stopping and not self._queue):
                        break
                    self._cond.wait(0.05 if self._buffer or len(self.spool) else self.flush_interval)
                if self._stopping and not self._queue:
                    stop = True
                    batch = None
                else:
                    stop = False
                    batch = self._queue[0] if self._queue else None
                    self._busy = batch is not None
            if stop:
                self._replay()  # one last attempt; what stays is on disk
                return
            if len(self.spool) and time.monotonic() >= self._retry_at:
                self._replay()  # older flows first, also while new batches keep coming
            if batch is not None:
                self._store_batch(batch)

    def _encode(self, batch: list[BatchItem]) -> Encoded:
        """The batch's flows as messages (None for flows of write_bytes: the store needs only their
        bytes), their serialized bytes (what the spool keeps), and the store's encoding of them (or
        why not). Flow bytes that are no valid Flow are left out and counted (storage.writer.check):
        one bad flow must neither fail its whole batch nor be stored."""
        flows: Sequence[flow_pb2.Flow] | None
        if all(type(item) is flow_pb2.Flow for item in batch):
            flows = batch
            raws = [f.SerializeToString() for f in batch]
        else:  # flows of write_bytes (with those of write, if one writer had both)
            flows = None
            raws = [item.SerializeToString() if type(item) is flow_pb2.Flow else item[2] for item in batch]
            bad = malformed(raws)
            if bad:
                first = min(bad)
                self._count_malformed(f"a batch of {len(batch)}", f"flow {batch[first][1] or 'without uuid'}",
                                      bad, first)
                raws = [raw for i, raw in enumerate(raws) if i not in bad]
        try:
            return flows, raws, self.store.encode_flows(flows, raws) if raws else EncodedFlows(0)
        except StorageError as err:  # e.g. the schema check could not reach the store
            return flows, raws, err

    def _count_malformed(self, where: str, first_name: str, bad: dict[int, str], first: int) -> None:
        with self._cond:
            self._malformed += len(bad)
            total = self._malformed
        log.error("storage writer: %d flows of %s are not valid Flow bytes and were left out (%d so far; "
                  "first, %s: %s)", len(bad), where, total, first_name, bad[first])

    def _encoded(self, batch: list[BatchItem]) -> Encoded:
        """The batch encoded: by the encoder stage if it was the one encoded ahead, else now. Then
        starts encoding the batch behind it, to overlap with this batch's insert."""
        ahead, self._ahead = self._ahead, None
        result = ahead[1].result() if ahead is not None and ahead[0] is batch else self._encode(batch)
        with self._cond:
            following = self._queue[1] if len(self._queue) > 1 else None
        if following is not None and not self._stopping:
            self._ahead = (following, self._encoder.submit(self._encode, following))
        return result

    def _store_batch(self, batch: list[BatchItem]) -> None:
        """Outside the lock: insert, or spool; the batch leaves the queue only when one succeeded."""
        flows, raws, encoded = self._encoded(batch)
        stored = not raws  # nothing valid left in it
        if raws:
            self._flow_size = max(50.0, sum(map(len, raws)) / len(raws))
        if not stored and not len(self.spool):
            stored = self._insert(flows, raws, check_existing=False, encoded=encoded)
        if not stored:
            try:
                self.spool.append(raws)
            except SpoolFullError as err:
                log.error("storage writer: %s; %d flows wait in memory", err, len(batch))
                with self._cond:
                    self._spool_error = SpoolFullError(
                        f"{err}; the store is not taking writes ({self._last_error}); "
                        f"{self._pending()} flows wait in memory and nothing was dropped")
                    self._busy = False
                    self._cond.notify_all()
                time.sleep(min(self._backoff, 1.0))
                self._replay()
                return
        with self._cond:
            self._queue.popleft()
            self._queued_rows -= len(batch)
            self._busy = False
            self._cond.notify_all()

    def _insert(self, flows: Sequence[flow_pb2.Flow] | None, raws: list[bytes], check_existing: bool,
                encoded: EncodedFlows | StorageError | None = None) -> bool:
        """Inserts the batch (`flows`: `raws` parsed, or None where the store needs only the bytes);
        False when the store did not take it. `check_existing` (a replay, `flows` given) leaves out the
        flows the store holds already."""
        started, total = time.monotonic(), len(raws)
        try:
            if check_existing:
                flows, raws = self._not_stored(flows, raws)
                encoded = None
            if isinstance(encoded, StorageError):
                raise encoded
            if raws:
                self.store.insert_encoded(encoded or self.store.encode_flows(flows, raws))
        except StorageError as err:
            with self._cond:
                self._retries += 1
                self._last_error = str(err)
                if not isinstance(err, StorageUnavailable):
                    self._head_failures += 1
                self._retry_at = time.monotonic() + self._backoff
                self._backoff = min(self._backoff * 2, self.retry_max)
            log.warning("storage writer: insert of %d flows failed: %s", len(raws), err)
            return False
        with self._cond:
            self._written += total  # flows found already stored count: they are stored
            self._batches += 1
            self._last_insert_seconds = time.monotonic() - started
            self._backoff = self.retry_initial
            self._head_failures = 0
            self._spool_error = None
            self._cond.notify_all()
        for hook in self.insert_hooks:
            try:
                hook(self._last_insert_seconds, total)
            except Exception:  # a metrics failure must never fail a write
                log.exception("storage writer: insert hook failed")
        return True

    def _not_stored(self, flows: list[flow_pb2.Flow], raws: list[bytes]):
        """The flows (and raws) of a batch that the store does not hold yet (by uuid)."""
        uuids = [f.uuid for f in flows if f.uuid]
        if not uuids:
            return flows, raws
        times = [f.time.seconds * 1_000_000_000 + f.time.nanos for f in flows if f.uuid]
        # A flow without time was stored with its insert time: search up to now.
        until = time.time_ns() if 0 in times else max(times)
        stored = self.store.existing_uuids(uuids, min(times), until)
        if not stored:
            return flows, raws
        keep = [i for i, f in enumerate(flows) if f.uuid not in stored]
        return [flows[i] for i in keep], [raws[i] for i in keep]

    def _replay(self) -> None:
        """Replays spooled batches in order until one fails. A file damaged on disk goes to rejected/,
        flow bytes in it that are no valid Flow are left out and counted: neither may stop the writer."""
        while len(self.spool):
            try:
                raws = self.spool.head()
            except ValueError as err:
                log.error("storage writer: spooled batch %s; moved to %s/rejected", err, self.spool.dir)
                self.spool.pop(rejected=True)
                with self._cond:
                    self._rejected += 1
                continue
            bad = malformed(raws)
            if bad:
                first = min(bad)
                self._count_malformed(f"spooled batch {self.spool.files[0]} ({len(raws)} flows)",
                                      f"flow {first + 1} of the file", bad, first)
                raws = [raw for i, raw in enumerate(raws) if i not in bad]
            flows = [flow_pb2.Flow.FromString(r) for r in raws]
            if self._insert(flows, raws, check_existing=True):
                self.spool.pop()
                continue
            if self._head_failures >= self.reject_after:
                log.error("storage writer: the store refused spooled batch %s %d times (%s); moved to "
                          "%s/rejected", self.spool.files[0].name, self._head_failures, self._last_error,
                          self.spool.dir)
                self.spool.pop(rejected=True)
                with self._cond:
                    self._rejected += 1
                    self._head_failures = 0
                continue
            return
