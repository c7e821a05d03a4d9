"""Acknowledge once rows are in the spool (fsync'ed); insert them in large batches behind.

The other batcher (`batching.InsertBatcher`) answers a call only after its
INSERT commits, so inserts are as large as what senders have in flight. This
one answers once the rows are in the write-ahead log (`spool.Spool`), then
inserts them ~`max_rows` or ~`linger` seconds at a time, whichever comes first,
or sooner when the senders pause (nothing arrived for `idle_seal` seconds) and
at least `min_rows` rows wait: rows of a burst's end are not held back waiting
for more that are not coming. A segment that holds `busy_rows` at its linger is
filling fast and may stay open up to `max_linger`: under heavy load, small parts
would cost more in merges than the rest of the insert. Senders see a few
milliseconds (one fsync shared by every call that arrived meanwhile); the store
sees few, large inserts.

Guarantees kept from the acknowledge-after-insert design:
- Nothing acknowledged is lost: it is on disk before the answer, kept until
  its INSERT commits, and replayed into the store after a restart.
- When the store fails, senders are told: after an INSERT into a table fails,
  calls are answered 503 (naming the table and the error) until an insert into
  it succeeds; the spooled rows are retried every `retry_seconds` meanwhile.
- Memory and disk stay bounded: past `max_pending_rows` rows not yet stored,
  calls are refused with 429.
- A retried call is not stored twice: its eventIDs are remembered once spooled.
- A row the store refuses for its data does not block the others: it is set
  aside in the spool's `refused/` directory, logged and counted.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from trail_operator.gateway.batching import (
    InsertFailedError,
    RecentEventIds,
    check_admission,
    report_refused,
)
from trail_operator.gateway.metrics import GatewayMetrics
from trail_operator.gateway.spool import Segment, Spool
from trail_operator.store.client import Store
from trail_operator.store.rows import RowChunks, insert_rows_isolating

log = logging.getLogger(__name__)


@dataclass
class _Group:
    """Calls waiting for the same append and fsync."""

    rows_by_table: dict[str, RowChunks] = field(default_factory=dict)
    rows: int = 0
    waiters: list[tuple[asyncio.Future[None], list[str]]] = field(default_factory=list)


class SpooledBatcher:
    def __init__(
        self, store: Store, metrics: GatewayMetrics, spool: Spool, *, max_rows: int = 60_000,
        linger: float = 0.5, max_linger: float = 1.5, busy_rows: int = 10_000,
        max_pending_rows: int = 300_000, retry_seconds: float = 1.0,
        idle_seal: float = 0.05, min_rows: int = 1_000,
        group_wait: float = 0.005, group_rows: int = 1_000,
        inserters: int = 2, recent_ids: RecentEventIds | None = None,
        is_routed: Callable[[str], bool] = lambda table: True,
    ) -> None:
        self.store = store
        self.metrics = metrics
        self.spool = spool
        self.max_rows = max_rows
        self.linger = linger
        self.max_linger = max(linger, max_linger)
        self.busy_rows = busy_rows
        # Early sealing when the senders pause; `min_rows` keeps parts from getting
        # small (ClickHouse advises inserts of at least ~1,000 rows).
        self.idle_seal = idle_seal
        self.min_rows = min_rows
        # Under load, a group of calls waits up to `group_wait` seconds for company
        # until it holds `group_rows`: an fsync costs ~110 us of kernel CPU whatever
        # it carries, and back to back each call of 100 events had one of its own.
        self.group_wait = group_wait
        self.group_rows = group_rows
        self.max_pending_rows = max_pending_rows
        self.retry_seconds = retry_seconds
        # Inserts in flight at once (bounded by the store's client pool): while one
        # waits on the engine, the next segment is already on its way.
        self.inserters = max(1, min(inserters, store.pool_size))
        self.recent_ids = recent_ids or RecentEventIds()
        # Whether a table still belongs to a store; rows spooled for a store that was
        # deleted meanwhile are dropped instead of retried (and blocking ingest) forever.
        self.is_routed = is_routed
        # Why each failing table's last INSERT failed (see `failure`).
        self._failures: dict[str, str] = {}
        self._group = _Group()
        self._group_ready = asyncio.Event()
        # Held while an append runs in its thread: closing the segment must wait.
        self._spool_lock = asyncio.Lock()
        self._open_since: float | None = None  # when the open segment got its first rows
        self._last_append = 0.0  # when rows were last appended
        self._open_rows_arrived = asyncio.Event()
        # Sealed segments not yet stored, and the queue that hands them to inserters.
        self._unstored: list[Segment] = []
        self._unstored_rows = 0  # their rows not stored yet, kept as they change
        self._ready: asyncio.Queue[tuple[Segment, str] | None] = asyncio.Queue()
        self._appender: asyncio.Task[None] | None = None
        self._sealer: asyncio.Task[None] | None = None
        self._workers: list[asyncio.Task[None]] = []
        self._closing = False
        self._draining = False

    @property
    def pending_rows(self) -> int:
        """Rows accepted or being accepted that are not stored yet."""
        return self._group.rows + self.spool.open_rows + self._unstored_rows

    def start(self) -> None:
        if self._appender is not None:
            return
        for segment in self.spool.recover():
            if segment.rows:
                log.info("replaying %d rows from spool segment %s",
                         segment.rows, segment.path.name)
                self._hand_over(segment)
            else:
                self.spool.discard(segment)
        self._appender = asyncio.create_task(self._append_forever(), name="spool-append")
        self._sealer = asyncio.create_task(self._seal_forever(), name="spool-seal")
        self._workers = [asyncio.create_task(self._insert_forever(), name=f"spool-insert-{i}")
                         for i in range(self.inserters)]

    async def stop(self) -> None:
        """Append what is waiting, try once to insert everything, and stop.

        Rows the store does not take now stay in the spool for the next start.
        """
        self._closing = True
        self._group_ready.set()
        if self._appender is None or self._sealer is None:
            self.spool.close()
            return
        with contextlib.suppress(asyncio.CancelledError):
            await self._appender  # nothing more can be appended after this
        self._sealer.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._sealer
        async with self._spool_lock:
            self._seal()
        self._draining = True
        for _ in self._workers:
            self._ready.put_nowait(None)
        await asyncio.gather(*self._workers, return_exceptions=True)
        self._appender, self._sealer, self._workers = None, None, []
        self.spool.close()

    async def write(self, rows_by_table: dict[str, RowChunks], event_ids: list[str]) -> None:
        """Spool the rows; return once they are durable on disk, or raise."""
        count = sum(len(rows) for rows in rows_by_table.values())
        if count == 0:
            return
        if self.failure is not None and not self._closing:
            raise InsertFailedError(self.failure)
        check_admission(count, self.pending_rows, self.max_pending_rows, self._closing)
        group = self._group
        for table, rows in rows_by_table.items():
            group.rows_by_table.setdefault(table, RowChunks()).extend(rows)
        group.rows += count
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        group.waiters.append((future, event_ids))
        self.metrics.queue_depth.set(self.pending_rows)
        self._group_ready.set()
        await future

    # appending and sealing ---------------------------------------------------

    async def _append_forever(self) -> None:
        while True:
            if not self._group.rows:
                if self._closing:
                    return
                await self._group_ready.wait()
                self._group_ready.clear()
                continue
            if self._busy() and self._group.rows < self.group_rows:
                await asyncio.sleep(self.group_wait)  # calls meanwhile join this group
            group, self._group = self._group, _Group()
            try:
                async with self._spool_lock:
                    # While this fsync runs, new calls gather into the next group.
                    await asyncio.to_thread(self.spool.append, group.rows_by_table)
                    self._last_append = time.monotonic()
                    if self._open_since is None:
                        self._open_since = time.monotonic()
                        self._open_rows_arrived.set()  # starts the segment's linger clock
                    if self.spool.open_rows >= self.max_rows:
                        self._seal()
            except OSError as exc:
                log.error("cannot write the spool: %s", exc)
                for future, _ in group.waiters:
                    if not future.done():
                        future.set_exception(InsertFailedError(
                            f"the gateway cannot write its spool: {exc}"))
                continue
            for future, event_ids in group.waiters:
                self.recent_ids.add_all(event_ids)
                if not future.done():
                    future.set_result(None)

    async def _seal_forever(self) -> None:
        """Seal the open segment once its first rows are `linger` seconds old (up to
        `max_linger` when it is busy), or earlier once the senders pause with at
        least `min_rows` rows in it."""
        while True:
            await self._open_rows_arrived.wait()
            self._open_rows_arrived.clear()
            opened = self._open_since
            if opened is None:
                continue
            deadline = opened + self.linger
            while True:
                left = deadline - time.monotonic()
                if left <= 0:
                    if deadline >= opened + self.max_linger or \
                            self.spool.open_rows < self.busy_rows:
                        break
                    deadline = opened + self.max_linger  # busy: gather a larger part
                    continue
                await asyncio.sleep(min(left, self.idle_seal))
                if self._open_since != opened or self._paused():
                    break
            async with self._spool_lock:
                if self._open_since == opened:  # not sealed for size meanwhile
                    self._seal()

    def _busy(self) -> bool:
        """Appends run back to back: the last one ended under `group_wait` ago.

        Otherwise a group is appended at once: waiting would only delay its answer.
        """
        return not self._closing and time.monotonic() - self._last_append < self.group_wait

    def _paused(self) -> bool:
        """Enough rows wait, and none arrived for `idle_seal` seconds (none on the way)."""
        return (self.spool.open_rows >= self.min_rows and not self._group.rows
                and time.monotonic() - self._last_append >= self.idle_seal)

    def _seal(self) -> None:
        """Close the open segment and queue it for insertion (spool lock held)."""
        opened, self._open_since = self._open_since, None
        for segment in self.spool.close_segments():
            segment.opened = opened
            self._hand_over(segment)

    def _hand_over(self, segment: Segment) -> None:
        if not segment.rows_by_table:  # its only append failed: nothing to insert
            self.spool.discard(segment)
            return
        self._unstored.append(segment)
        self._unstored_rows += segment.rows
        # A table at a time: the inserters share one segment's tables, so the last
        # segment of a burst is not left to one of them.
        for table in segment.rows_by_table:
            self._ready.put_nowait((segment, table))

    # inserting -------------------------------------------------------------

    @property
    def failure(self) -> str | None:
        """Why an INSERT is failing; None while every table takes its rows."""
        return next(iter(self._failures.values()), None)

    async def _insert_forever(self) -> None:
        while True:
            item = await self._ready.get()
            if item is None:
                return
            segment, table = item
            while not await self._insert(segment, table):
                if self._draining:
                    return  # the store is down at shutdown: the spool keeps the rows
                await asyncio.sleep(self.retry_seconds)
            if not segment.rows_by_table:  # its last table is stored
                self._unstored.remove(segment)
                await asyncio.to_thread(self.spool.discard, segment)  # unlink: a syscall
                if segment.opened is not None:
                    self.metrics.batch_latency.observe(time.monotonic() - segment.opened)
            self.metrics.queue_depth.set(self.pending_rows)

    def _set_aside(self, table: str, refused: list[tuple[bytes, str]]) -> None:
        report_refused(self.metrics, table, refused, kept_in=self.spool.set_aside(table, refused))

    async def _insert(self, segment: Segment, table: str) -> bool:
        """Insert one table's rows of a segment; True when they are stored (or dropped)."""
        rows = segment.rows_by_table[table]
        try:
            refused = await asyncio.to_thread(insert_rows_isolating, self.store, table, rows)
            if refused:
                await asyncio.to_thread(self._set_aside, table, refused)
        except Exception as exc:  # any failure must reach the senders, not end the loop
            self.metrics.insert_failures.labels(table).inc()
            if not self.is_routed(table):
                log.warning("dropping %d spooled rows for %s: its store was deleted (%s)",
                            len(rows), table, str(exc)[:200])
                self._forget(segment, table)
                self._failures.pop(table, None)
                return True
            failure = f"store table {table} did not accept the batch: {str(exc)[:300]}"
            self._failures[table] = failure
            log.warning("%s; retrying in %.1f s", failure, self.retry_seconds)
            return False
        self._forget(segment, table)  # stored: a retry must not insert it again
        self._failures.pop(table, None)
        self.metrics.inserted.labels(table).inc(len(rows) - len(refused))
        return True

    def _forget(self, segment: Segment, table: str) -> None:
        self._unstored_rows -= len(segment.rows_by_table.pop(table))
