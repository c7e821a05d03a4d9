"""Acknowledge once rows are in the spool (fsync'ed); insert them in large batches behind.

The other batcher (`batching.InsertBatcher`) answers a call only after its
INSERT commits, so inserts are as large as what senders have in flight. This
one answers once the rows are in the write-ahead log (`spool.Spool`), then
inserts them ~`max_rows` or ~`linger` seconds at a time, whichever comes first.
Senders see a few milliseconds (one fsync shared by every call that arrived
meanwhile); the store sees few, large inserts.

Guarantees kept from the acknowledge-after-insert design:
- Nothing acknowledged is lost: it is on disk before the answer, kept until
  its INSERT commits, and replayed into the store after a restart.
- When the store fails, senders are told: after an INSERT fails, calls are
  answered 503 (naming the table and the error) until an insert succeeds again;
  the spooled rows are retried every `retry_seconds` meanwhile.
- Memory and disk stay bounded: past `max_pending_rows` rows not yet stored,
  calls are refused with 429.
- A retried call is not stored twice: its eventIDs are remembered once spooled.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass, field

from trail_operator.gateway.batching import InsertFailedError, OverloadedError, RecentEventIds
from trail_operator.gateway.metrics import GatewayMetrics
from trail_operator.gateway.spool import Segment, Spool
from trail_operator.store.client import Store
from trail_operator.store.rows import insert_rows

log = logging.getLogger(__name__)


@dataclass
class _Group:
    """Calls waiting for the same append and fsync."""

    rows_by_table: dict[str, list[bytes]] = field(default_factory=dict)
    rows: int = 0
    waiters: list[tuple[asyncio.Future[None], list[str]]] = field(default_factory=list)


class SpooledBatcher:
    def __init__(
        self, store: Store, metrics: GatewayMetrics, spool: Spool, *, max_rows: int = 10_000,
        linger: float = 0.5, max_pending_rows: int = 200_000, retry_seconds: float = 1.0,
        recent_ids: RecentEventIds | None = None,
    ) -> None:
        self.store = store
        self.metrics = metrics
        self.spool = spool
        self.max_rows = max_rows
        self.linger = linger
        self.max_pending_rows = max_pending_rows
        self.retry_seconds = retry_seconds
        self.recent_ids = recent_ids or RecentEventIds()
        # Why the last INSERT failed; None while inserts succeed.
        self.failure: str | None = None
        self._group = _Group()
        self._closed: list[Segment] = []  # handed to the inserter, oldest first
        self._open_since: float | None = None  # when the open segment got its first rows
        self._group_ready = asyncio.Event()
        # Held while an append runs in its thread: closing the segment must wait.
        self._spool_lock = asyncio.Lock()
        self._insert_wake = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._closing = False
        self._draining = False

    @property
    def pending_rows(self) -> int:
        """Rows accepted or being accepted that are not stored yet."""
        return self._group.rows + self.spool.open_rows + sum(s.rows for s in self._closed)

    def start(self) -> None:
        if self._tasks:
            return
        for segment in self.spool.recover():
            if segment.rows:
                log.info("replaying %d rows from spool segment %s",
                         segment.rows, segment.path.name)
                self._closed.append(segment)
            else:
                self.spool.discard(segment)
        self._tasks = [asyncio.create_task(self._append_forever(), name="spool-append"),
                       asyncio.create_task(self._insert_forever(), name="spool-insert")]
        self._insert_wake.set()

    async def stop(self) -> None:
        """Append what is waiting, try once to insert everything, and stop.

        Rows the store does not take now stay in the spool for the next start.
        """
        self._closing = True
        self._group_ready.set()
        if self._tasks:
            appender, inserter = self._tasks
            with contextlib.suppress(asyncio.CancelledError):
                await appender
            self._draining = True  # nothing more can be appended: insert the rest
            self._insert_wake.set()
            with contextlib.suppress(asyncio.CancelledError):
                await inserter
        self._tasks = []
        self.spool.close()

    async def write(self, rows_by_table: dict[str, list[bytes]], event_ids: list[str]) -> None:
        """Spool the rows; return once they are durable on disk, or raise."""
        count = sum(len(rows) for rows in rows_by_table.values())
        if count == 0:
            return
        if self._closing:
            raise OverloadedError("the gateway is shutting down")
        if self.failure is not None:
            raise InsertFailedError(self.failure)
        if self.pending_rows + count > self.max_pending_rows:
            raise OverloadedError(
                f"{self.pending_rows} rows are waiting to be stored (limit "
                f"{self.max_pending_rows}); retry later")
        group = self._group
        for table, rows in rows_by_table.items():
            group.rows_by_table.setdefault(table, []).extend(rows)
        group.rows += count
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        group.waiters.append((future, event_ids))
        self.metrics.queue_depth.set(self.pending_rows)
        self._group_ready.set()
        await future

    # appending -------------------------------------------------------------

    async def _append_forever(self) -> None:
        while True:
            if not self._group.rows:
                if self._closing:
                    return
                await self._group_ready.wait()
                self._group_ready.clear()
                continue
            group, self._group = self._group, _Group()
            try:
                # While this fsync runs, new calls gather into the next group.
                async with self._spool_lock:
                    await asyncio.to_thread(self.spool.append, group.rows_by_table)
            except OSError as exc:
                log.error("cannot write the spool: %s", exc)
                for future, _ in group.waiters:
                    if not future.done():
                        future.set_exception(InsertFailedError(
                            f"the gateway cannot write its spool: {exc}"))
                continue
            if self._open_since is None:
                self._open_since = time.monotonic()
                self._insert_wake.set()  # starts the linger clock of the new segment
            for future, event_ids in group.waiters:
                self.recent_ids.add_all(event_ids)
                if not future.done():
                    future.set_result(None)
            if self.spool.open_rows >= self.max_rows:
                self._insert_wake.set()

    # inserting -------------------------------------------------------------

    async def _insert_forever(self) -> None:
        while True:
            if not self._closed:
                if not self._draining and not await self._open_segment_due():
                    continue
                async with self._spool_lock:
                    opened = self._open_since
                    for segment in self.spool.close_segments():
                        segment.opened = opened
                        self._closed.append(segment)
                    self._open_since = None
                if not self._closed:
                    if self._draining:
                        return
                    continue
            segment = self._closed[0]
            if await self._insert(segment):
                self._closed.pop(0)
                self.spool.discard(segment)
            elif self._draining:
                return  # the store is down at shutdown: the spool keeps the rows
            else:
                await asyncio.sleep(self.retry_seconds)
            self.metrics.queue_depth.set(self.pending_rows)

    async def _open_segment_due(self) -> bool:
        """Wait until the open segment should be inserted: full, or old enough."""
        if self._open_since is None or self.spool.open_rows == 0:
            timeout: float | None = None
        else:
            timeout = self.linger - (time.monotonic() - self._open_since)
            if timeout <= 0 or self.spool.open_rows >= self.max_rows:
                return True
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._insert_wake.wait(), timeout=timeout)
        self._insert_wake.clear()
        return False

    async def _insert(self, segment: Segment) -> bool:
        """Insert what is left of a segment, table by table; True when all is stored."""
        started = segment.opened or time.monotonic()
        for table in list(segment.rows_by_table):
            rows = segment.rows_by_table[table]
            try:
                await asyncio.to_thread(insert_rows, self.store, table, rows)
            except Exception as exc:  # any failure must reach the senders, not end the loop
                self.failure = f"store table {table} did not accept the batch: {str(exc)[:300]}"
                self.metrics.insert_failures.labels(table).inc()
                log.warning("%s; retrying in %.1f s", self.failure, self.retry_seconds)
                return False
            del segment.rows_by_table[table]  # stored: a retry must not insert it again
            self.metrics.inserted.labels(table).inc(len(rows))
        self.failure = None
        self.metrics.batch_latency.observe(time.monotonic() - started)
        return True
