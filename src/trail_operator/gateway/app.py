"""The gateway's HTTP application: ingest endpoints, health and metrics.

Audit bodies are parsed in worker processes (`parse_pool.py`: threads would
share the interpreter lock with the loop), or on the event loop when there
are none; the inserts leave the loop through the batcher. Every fault in a
call is answered with a status and a message naming what was wrong; the good
events in the same call are kept.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson
from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from trail_operator.config import Settings
from trail_operator.events.k8s_audit import AuditEventNormalizer
from trail_operator.events.put_audit import (
    ActivityEventNormalizer,
    PutAuditEventsError,
    parse_call,
)
from trail_operator.gateway.audit_calls import (
    AuditCallError,
    GroupedAuditCall,
    ParsedAuditCall,
    group_by_table,
    parse_audit_call,
)
from trail_operator.gateway.auth import AuthError, authorize_audit_webhook, bearer_token
from trail_operator.gateway.batching import InsertBatcher, InsertFailedError, OverloadedError
from trail_operator.gateway.channels import ChannelDirectory, ChannelError, parse_channel
from trail_operator.gateway.config import GatewayConfig
from trail_operator.gateway.metrics import GatewayMetrics
from trail_operator.gateway.parse_pool import ParsePool
from trail_operator.gateway.routing import Routes, build_routes
from trail_operator.gateway.spool import Spool
from trail_operator.gateway.spooled_batcher import SpooledBatcher
from trail_operator.store.catalog import StoreEntry, list_entries
from trail_operator.store.client import Store
from trail_operator.store.rows import RowChunks, encode_row

log = logging.getLogger(__name__)

SOURCE_AUDIT = "k8s-audit"
SOURCE_PUT = "put-audit-events"


def error_response(status: int, code: str, message: str, **extra: Any) -> web.Response:
    headers = {"Retry-After": "1"} if status in (429, 503) else None
    return web.json_response({"errorCode": code, "message": message, **extra}, status=status,
                             headers=headers, dumps=lambda o: orjson.dumps(o).decode())


@dataclass
class Gateway:
    """State of one gateway: routes, batcher, channel directory, metrics."""

    config: GatewayConfig
    settings: Settings
    store: Store
    metrics: GatewayMetrics = field(default_factory=GatewayMetrics)
    channels: ChannelDirectory = field(default_factory=ChannelDirectory)
    routes: Routes = field(default_factory=Routes)
    entries: dict[str, StoreEntry] = field(default_factory=dict)
    routes_loaded: bool = False

    def __post_init__(self) -> None:
        self.normalizer = AuditEventNormalizer(self.settings.cluster_name, self.settings.region)
        self.batcher: InsertBatcher | SpooledBatcher
        if self.config.spool_dir is not None:
            self.batcher = SpooledBatcher(
                self.store, self.metrics, Spool(self.config.spool_dir),
                max_rows=self.config.spool_max_rows, linger=self.config.spool_linger,
                max_linger=self.config.spool_max_linger, busy_rows=self.config.spool_busy_rows,
                idle_seal=self.config.spool_idle_seal, min_rows=self.config.spool_min_rows,
                max_pending_rows=self.config.max_pending_rows, is_routed=self._is_routed)
        else:
            self.batcher = InsertBatcher(
                self.store, self.metrics, max_rows=self.config.batch_max_rows,
                linger=self.config.batch_linger, max_pending_rows=self.config.max_pending_rows,
                max_concurrent_flushes=self.config.max_concurrent_flushes)
        self._refresher: asyncio.Task[None] | None = None
        workers = self.config.workers_for_parsing
        self.parse_pool = (
            ParsePool(workers, self.settings.cluster_name, self.settings.region)
            if workers else None)

    # lifecycle -------------------------------------------------------------

    async def start(self) -> None:
        if self.parse_pool is not None:
            await self.parse_pool.start()
        await self.refresh_routes()
        self.batcher.start()
        self._refresher = asyncio.create_task(self._refresh_forever(), name="routes-refresh")

    async def stop(self) -> None:
        if self._refresher is not None:
            self._refresher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._refresher
        await self.batcher.stop()
        if self.parse_pool is not None:
            await self.parse_pool.close()

    async def refresh_routes(self) -> None:
        try:
            entries = await asyncio.to_thread(list_entries, self.store)
        except Exception as exc:  # keep the last good routes while the store is away
            log.warning("cannot refresh routes from the store catalog: %s", exc)
            return
        self.set_entries(entries)

    def _is_routed(self, table: str) -> bool:
        return any(entry.table == table for entry in self.entries.values())

    def set_entries(self, entries: list[StoreEntry]) -> None:
        """Route to these stores from now on."""
        routes, problems = build_routes(entries)
        for problem in problems:
            log.warning("store skipped by routing: %s", problem)
        self.entries = {entry.ref: entry for entry in entries}
        self.routes = routes
        if self.parse_pool is not None:
            self.parse_pool.set_entries(entries)
        self.routes_loaded = True

    async def _refresh_forever(self) -> None:
        while True:
            await asyncio.sleep(self.config.routes_refresh_seconds)
            await self.refresh_routes()

    # hot path --------------------------------------------------------------

    def _rows(self, encoded: Sequence[tuple[str, bytes, Sequence[str]]],
              ) -> tuple[dict[str, RowChunks], list[str]]:
        """Encoded rows by table, and their eventIDs; copies of stored events dropped."""
        ids = [event_id for event_id, _, _ in encoded]
        recent = self.batcher.recent_ids
        if recent.any_of(ids):  # a retried call: drop what is stored already
            kept = [item for item in encoded if item[0] not in recent]
            self.metrics.duplicates.inc(len(encoded) - len(kept))
            encoded, ids = kept, [event_id for event_id, _, _ in kept]
        return group_by_table(encoded), ids

    async def _parse_audit_call(self, body: bytes) -> GroupedAuditCall | ParsedAuditCall:
        """Rows of an audit body, from a parse worker when there are any.

        Parsed here instead when no worker could, and when some of its events are
        stored already (a retried call): dropping those takes each row's eventID,
        which only the per-row form keeps.
        """
        if self.parse_pool is not None:
            grouped = await self.parse_pool.parse(body)
            if grouped is not None and not self.batcher.recent_ids.any_of(grouped.ids):
                return grouped
        return parse_audit_call(self.normalizer, self.routes, body)

    async def _store(self, rows: dict[str, RowChunks], ids: list[str],
                     source: str) -> web.Response | None:
        """None when stored; otherwise the response that tells the sender to retry."""
        try:
            await self.batcher.write(rows, ids)
        except OverloadedError as exc:
            self.metrics.rejected.labels(source, "overloaded").inc(len(ids))
            return error_response(429, "Throttling", str(exc))
        except InsertFailedError as exc:
            self.metrics.rejected.labels(source, "store_unavailable").inc(len(ids))
            return error_response(503, "InternalFailure", str(exc))
        return None

    # handlers --------------------------------------------------------------

    async def k8s_audit(self, request: web.Request) -> web.Response:
        try:
            authorize_audit_webhook(request, self.config)
        except AuthError as exc:
            self.metrics.rejected.labels(SOURCE_AUDIT, "unauthorized").inc()
            return error_response(exc.status, "Unauthorized", str(exc))
        body = await request.read()
        try:
            parsed = await self._parse_audit_call(body)
        except AuditCallError as exc:
            self.metrics.rejected.labels(SOURCE_AUDIT, exc.reason).inc()
            return error_response(400, exc.code, str(exc))
        del body  # only the encoded rows wait for the spool or the INSERT, not the call's body
        self.metrics.received.labels(SOURCE_AUDIT).inc(parsed.received)
        if parsed.rejections:
            self.metrics.rejected.labels(SOURCE_AUDIT, "invalid_event").inc(
                len(parsed.rejections))
        if isinstance(parsed, GroupedAuditCall):
            rows, ids = parsed.rows, parsed.ids
        else:
            rows, ids = self._rows(parsed.rows)
        failure = await self._store(rows, ids, SOURCE_AUDIT)
        if failure is not None:
            return failure
        self.metrics.accepted.labels(SOURCE_AUDIT).inc(parsed.accepted)
        result = {"accepted": parsed.accepted, "rejected": parsed.rejections}
        return web.Response(body=orjson.dumps(result), status=400 if parsed.rejections else 200,
                            content_type="application/json")

    async def put_audit_events(self, request: web.Request) -> web.Response:
        try:
            namespace, name = parse_channel(request.query.get("channel"))
            channel = await asyncio.to_thread(self.channels.resolve, namespace, name)
        except ChannelError as exc:
            self.metrics.rejected.labels(SOURCE_PUT, "unknown_channel").inc()
            return error_response(exc.status, exc.code, str(exc))
        token = bearer_token(request)
        if token is None or not channel.token_matches(token):
            self.metrics.rejected.labels(SOURCE_PUT, "unauthorized").inc()
            return error_response(401, "Unauthorized",
                                  f"a valid bearer token for channel {channel.ref} is required")
        if (request.content_length or 0) > 1024 * 1024:
            self.metrics.rejected.labels(SOURCE_PUT, "too_large").inc()
            return error_response(413, "ValidationException", "request body is over 1 MB")
        try:
            events = parse_call(await request.read())
        except PutAuditEventsError as exc:
            self.metrics.rejected.labels(SOURCE_PUT, "invalid_call").inc()
            return error_response(400, exc.code, str(exc))
        self.metrics.received.labels(SOURCE_PUT).inc(len(events))
        tables = []
        for destination in channel.destinations:
            entry = self.entries.get(f"{namespace}/{destination}")
            if entry is None and not self.routes_loaded:
                return error_response(503, "InternalFailure", "routes are not loaded yet")
            if entry is None:
                return error_response(
                    400, "InvalidRecipient",
                    f"destination EventDataStore {namespace}/{destination} of channel "
                    f"{channel.ref} does not exist or is not ready")
            if entry.ingestion_enabled:
                tables.append(entry.table)
        normalizer = ActivityEventNormalizer(
            self.settings.cluster_name, self.settings.region, namespace, channel.ref,
            default_source=f"{name}.{namespace}.integrations.trail-operator.dev")
        accepted, failed = normalizer.normalize(events)
        rows, ids = self._rows([(event.record["eventID"], encode_row(event.record), tables)
                                for event in accepted])
        failure = await self._store(rows, ids, SOURCE_PUT)
        if failure is not None:
            return failure
        self.metrics.accepted.labels(SOURCE_PUT).inc(len(accepted))
        if failed:
            self.metrics.rejected.labels(SOURCE_PUT, "invalid_event").inc(len(failed))
        return web.json_response(
            {
                "successful": [
                    {"id": event.id, "eventID": event.record["eventID"]} for event in accepted
                ],
                "failed": [failure_entry.as_dict() for failure_entry in failed],
            },
            dumps=lambda o: orjson.dumps(o).decode(),
        )

    async def healthz(self, _: web.Request) -> web.Response:
        return web.Response(text="ok")

    async def readyz(self, _: web.Request) -> web.Response:
        if not self.routes_loaded:
            return web.Response(status=503, text="routes not loaded from the store catalog")
        if not await asyncio.to_thread(self.store.ping):
            return web.Response(status=503, text="store unreachable")
        if self.batcher.failure is not None:
            return web.Response(status=503, text=f"inserts are failing: {self.batcher.failure}")
        return web.Response(text="ok")

    async def metrics_endpoint(self, _: web.Request) -> web.Response:
        return web.Response(body=generate_latest(self.metrics.registry),
                            headers={"Content-Type": CONTENT_TYPE_LATEST})

    def build_app(self) -> web.Application:
        app = web.Application(client_max_size=self.config.max_audit_body_bytes)
        app.router.add_post("/k8s-audit", self.k8s_audit)
        app.router.add_post("/PutAuditEvents", self.put_audit_events)
        app.router.add_get("/healthz", self.healthz)
        app.router.add_get("/readyz", self.readyz)
        app.router.add_get("/metrics", self.metrics_endpoint)
        from trail_operator.gateway.query_api import query_routes  # it imports this module

        app.add_routes(query_routes(self))
        return app
