"""Batched, acknowledged inserts: a call is answered only once its rows are durable.

Calls put their rows in a shared pending batch and wait; a flusher inserts
the batch (one INSERT per table), then wakes the waiters with the outcome.
This is group commit: the flusher takes whatever is pending as soon as an
insert slot is free (after at most `linger` seconds for company, or at once
at `max_rows`), and while inserts run new calls gather into the next batch.
Up to `max_concurrent_flushes` batches are inserted at once, one per store
client. At low load a call waits for one small insert; under load batches
grow by themselves, so inserts stay few and large with no fixed delay.
Pending rows are bounded: past `max_pending_rows` a call is refused at once
(the sender retries later) instead of growing memory without bound.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from trail_operator.gateway.metrics import GatewayMetrics
from trail_operator.store.client import Store
from trail_operator.store.rows import RowChunks, insert_rows_isolating

log = logging.getLogger(__name__)


class OverloadedError(RuntimeError):
    """Too many rows are waiting; the sender should retry later."""


class InsertFailedError(RuntimeError):
    """The batch holding the caller's rows was not stored."""


def check_admission(count: int, pending: int, max_pending: int, closing: bool) -> None:
    """Refuse a call the batcher must not take now (the sender retries later)."""
    if closing:
        raise OverloadedError("the gateway is shutting down")
    if pending + count > max_pending:
        raise OverloadedError(
            f"{pending} rows are waiting to be stored (limit {max_pending}); retry later")


def report_refused(metrics: GatewayMetrics, table: str, refused: list[tuple[bytes, str]],
                   kept_in: Path | None) -> None:
    """Count and log rows the store refused for their data (`insert_rows_isolating`);
    the log shows the first row itself when no file keeps them."""
    metrics.refused_rows.labels(table).inc(len(refused))
    row, reason = refused[0]
    where = (f"they are kept in {kept_in}" if kept_in is not None
             else f"the first is {row[:2000].decode('utf-8', 'replace')}")
    log.error("store table %s refused %d rows for their data and the rest is stored; %s. "
              "First reason: %s", table, len(refused), where, reason[:500])


class RecentEventIds:
    """EventIDs stored lately, so a retried call does not store its events twice.

    Two generations of sets: lookups are O(1), memory is bounded by
    2 x `capacity`, and an ID is remembered for at least `capacity` more IDs.
    The store's ReplacingMergeTree removes whatever copy slips past this.
    """

    def __init__(self, capacity: int = 500_000) -> None:
        self.capacity = capacity
        self._current: set[str] = set()
        self._previous: set[str] = set()

    def __contains__(self, event_id: object) -> bool:
        return event_id in self._current or event_id in self._previous

    def any_of(self, event_ids: Iterable[str]) -> bool:
        """Whether any of these is remembered: one C call for a whole call's IDs."""
        ids = set(event_ids)
        return not (ids.isdisjoint(self._current) and ids.isdisjoint(self._previous))

    def add_all(self, event_ids: Iterable[str]) -> None:
        self._current.update(event_ids)
        if len(self._current) >= self.capacity:
            self._previous, self._current = self._current, set()


@dataclass
class _Batch:
    chunks: dict[str, RowChunks] = field(default_factory=dict)
    rows: int = 0
    waiters: list[tuple[asyncio.Future[None], frozenset[str], list[str]]] = field(
        default_factory=list)
    started: float = field(default_factory=time.monotonic)


class InsertBatcher:
    # Each call here learns of its own failed INSERT; nothing fails for the gateway
    # as a whole (the spooled batcher's `failure` does).
    failure: str | None = None

    def __init__(
        self, store: Store, metrics: GatewayMetrics, *, max_rows: int = 10_000,
        linger: float = 0.01, max_pending_rows: int = 300_000, max_concurrent_flushes: int = 2,
        recent_ids: RecentEventIds | None = None,
    ) -> None:
        self.store = store
        self.metrics = metrics
        self.max_rows = max_rows
        self.linger = linger
        # As many as the store has clients: more would only queue for one.
        self.max_concurrent_flushes = max(1, min(max_concurrent_flushes, store.pool_size))
        self.max_pending_rows = max_pending_rows
        self.recent_ids = recent_ids or RecentEventIds()
        self._batch = _Batch()
        self._in_flight_rows = 0
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._closing = False

    @property
    def pending_rows(self) -> int:
        return self._batch.rows + self._in_flight_rows

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="insert-batcher")

    async def stop(self) -> None:
        """Flush what is pending, then stop."""
        self._closing = True
        self._wake.set()
        if self._task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def write(self, rows_by_table: dict[str, RowChunks], event_ids: list[str]) -> None:
        """Store the rows; return once they are durable, or raise."""
        count = sum(len(rows) for rows in rows_by_table.values())
        if count == 0:
            return
        check_admission(count, self.pending_rows, self.max_pending_rows, self._closing)
        batch = self._batch
        for table, rows in rows_by_table.items():
            batch.chunks.setdefault(table, RowChunks()).extend(rows)
        batch.rows += count
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        batch.waiters.append((future, frozenset(rows_by_table), event_ids))
        self.metrics.queue_depth.set(self.pending_rows)
        self._wake.set()
        await future

    async def _run(self) -> None:
        flushing: set[asyncio.Task[None]] = set()
        while True:
            batch = self._batch
            if not batch.rows:
                if self._closing:
                    break
                await self._wake.wait()
                self._wake.clear()
                continue
            if len(flushing) >= self.max_concurrent_flushes:
                # Every insert slot is busy: let the batch grow until one frees up.
                _, flushing = await asyncio.wait(flushing, return_when=asyncio.FIRST_COMPLETED)
                continue
            wait = self.linger - (time.monotonic() - batch.started)
            if wait > 0 and batch.rows < self.max_rows and not self._closing:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), timeout=wait)
                self._wake.clear()
                continue
            self._batch = _Batch()
            self._in_flight_rows += batch.rows
            task = asyncio.create_task(self._flush(batch))
            flushing.add(task)
            task.add_done_callback(flushing.discard)
        if flushing:
            await asyncio.wait(flushing)

    async def _flush(self, batch: _Batch) -> None:
        failed: dict[str, str] = {}
        try:
            for table, chunks in batch.chunks.items():
                try:
                    refused = await asyncio.to_thread(
                        insert_rows_isolating, self.store, table, chunks)
                    self.metrics.inserted.labels(table).inc(len(chunks) - len(refused))
                    if refused:  # no spool to keep them in: the log keeps one
                        report_refused(self.metrics, table, refused, kept_in=None)
                except Exception as exc:  # any failure must fail the waiters, not the loop
                    failed[table] = str(exc)
                    self.metrics.insert_failures.labels(table).inc()
        finally:
            self._in_flight_rows -= batch.rows
            self.metrics.queue_depth.set(self.pending_rows)
        self.metrics.batch_latency.observe(time.monotonic() - batch.started)
        for future, tables, event_ids in batch.waiters:
            if future.done():
                continue
            broken = tables & failed.keys()
            if broken:
                table = sorted(broken)[0]
                future.set_exception(InsertFailedError(
                    f"store table {table} did not accept the batch: {failed[table][:300]}"))
            else:
                self.recent_ids.add_all(event_ids)
                future.set_result(None)
