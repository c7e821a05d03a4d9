"""Kopf handlers for EventDataStore: translate the resource, call `reconcile`, post status.

Store calls block (chDB runs in process), so they run in worker threads and
the event loop stays free for the watch streams and, in the all-in-one
process, for the gateway.
"""

from __future__ import annotations

import asyncio
import logging
import os
from typing import Any

import kopf

from trail_operator.config import API_GROUP, API_VERSION
from trail_operator.operator.conditions import condition_status
from trail_operator.operator.context import OperatorContext, StoreConnectionError
from trail_operator.operator.event_history import ensure_event_history
from trail_operator.operator.reconcile import (
    STATE_PENDING_DELETION,
    StorePlan,
    apply_plan,
    failed_status,
    plan_store,
    ready_status,
    stats_status,
)
from trail_operator.store.catalog import ensure_catalog, remove_entry
from trail_operator.store.client import StoreError, StoreUnavailableError
from trail_operator.store.tables import drop_table, table_stats

EDS = (API_GROUP, API_VERSION, "eventdatastores")
STATUS_INTERVAL = float(os.environ.get("TRAIL_STATUS_INTERVAL", "10"))
RETRY_DELAY = float(os.environ.get("TRAIL_RETRY_DELAY", "5"))


def configure(settings: kopf.OperatorSettings) -> None:
    """Kopf settings for this operator, also used when it is embedded in another process."""
    settings.persistence.finalizer = f"{API_GROUP}/cleanup"
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=API_GROUP)
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
        prefix=API_GROUP, key="last-handled-configuration")
    # Post our own Events for transitions (kopf.event ignores this level); Kopf's
    # per-handler log chatter would be noise to users.
    settings.posting.level = logging.WARNING
    settings.watching.server_timeout = 300
    settings.watching.client_timeout = 330
    settings.peering.standalone = True


@kopf.on.login()
def login(**kwargs: Any) -> kopf.ConnectionInfo | None:
    """In-cluster credentials, else `$KUBECONFIG` read when the operator starts.

    Kopf's default reads the kubeconfig path the kubernetes client fixed at import.
    """
    return kopf.login_with_service_account(**kwargs) or kopf.login_with_kubeconfig(**kwargs)


@kopf.on.startup()
async def startup(settings: kopf.OperatorSettings, memo: Any,
                  logger: logging.Logger | logging.LoggerAdapter[Any], **_: Any) -> None:
    configure(settings)
    ctx: OperatorContext = memo.context
    await asyncio.to_thread(ensure_catalog, ctx.store)
    if await asyncio.to_thread(ensure_event_history, ctx.settings):
        logger.info("created the Event history store in %s", ctx.settings.admin_namespace)


def _plan(ctx: OperatorContext, namespace: str, name: str, uid: str,
          spec: dict[str, Any]) -> tuple[Any, StorePlan]:
    store, cluster = ctx.store_for(namespace, spec)
    plan = plan_store(namespace, name, uid, spec, ctx.settings, store.database, cluster)
    return store, plan


async def _reconcile(body: kopf.Body, patch: kopf.Patch, memo: Any, announce: bool) -> None:
    ctx: OperatorContext = memo.context
    meta, spec, status = body.meta, dict(body.spec), body.status
    generation = meta.get("generation")
    conditions = status.get("conditions")
    was_ready = condition_status(conditions, "Ready") == "True"
    try:
        store, plan = await asyncio.to_thread(
            _plan, ctx, str(meta.namespace), str(meta.name), str(meta.uid), spec)
        outcome = await asyncio.to_thread(apply_plan, store, plan)
    except (StoreUnavailableError, StoreConnectionError) as exc:
        reason = "StoreUnreachable" if isinstance(exc, StoreUnavailableError) else "StoreNotFound"
        patch.status.update(failed_status(reason, str(exc), generation, conditions))
        if was_ready or announce:
            kopf.event(body, type="Warning", reason=reason, message=str(exc))
        raise kopf.TemporaryError(f"{reason}: {exc}", delay=RETRY_DELAY) from exc
    except StoreError as exc:
        patch.status.update(failed_status("DDLRefused", str(exc), generation, conditions))
        kopf.event(body, type="Warning", reason="DDLRefused", message=str(exc)[:1000])
        raise kopf.TemporaryError(f"DDLRefused: {exc}", delay=RETRY_DELAY * 6) from exc
    patch.status.update(ready_status(plan, outcome.stats, generation, conditions))
    for change in outcome.changes:
        kopf.event(body, type="Normal", reason="Reconciled", message=change)
    if not was_ready:
        kopf.event(body, type="Normal", reason="Ready",
                   message=f"table {plan.table.table} is ready")


@kopf.on.resume(*EDS)
@kopf.on.create(*EDS)
@kopf.on.update(*EDS)
async def reconcile_event_data_store(body: kopf.Body, patch: kopf.Patch, memo: Any,
                                     **_: Any) -> None:
    await _reconcile(body, patch, memo, announce=True)


@kopf.timer(*EDS, interval=STATUS_INTERVAL, initial_delay=STATUS_INTERVAL)
async def refresh_event_data_store(body: kopf.Body, patch: kopf.Patch, memo: Any,
                                   **_: Any) -> None:
    """Refresh counts; re-reconcile a store that is not Ready (e.g. it was unreachable)."""
    if body.meta.get("deletionTimestamp"):
        return
    if condition_status(body.status.get("conditions"), "Ready") != "True":
        await _reconcile(body, patch, memo, announce=False)
        return
    ctx: OperatorContext = memo.context
    try:
        store, plan = await asyncio.to_thread(
            _plan, ctx, str(body.meta.namespace), str(body.meta.name), str(body.meta.uid),
            dict(body.spec))
        stats = await asyncio.to_thread(table_stats, store, plan.table.database, plan.table.table)
    except (StoreError, StoreConnectionError):
        # Let the full reconcile report the failure with its reason.
        await _reconcile(body, patch, memo, announce=False)
        return
    patch.status.update(stats_status(stats))


@kopf.on.delete(*EDS)
async def delete_event_data_store(body: kopf.Body, patch: kopf.Patch, memo: Any,
                                  **_: Any) -> None:
    ctx: OperatorContext = memo.context
    meta, spec = body.meta, dict(body.spec)
    patch.status["state"] = STATE_PENDING_DELETION
    try:
        store, plan = await asyncio.to_thread(
            _plan, ctx, str(meta.namespace), str(meta.name), str(meta.uid), spec)
        await asyncio.to_thread(remove_entry, store, plan.entry.uid)
        if plan.deletion_policy == "Delete":
            await asyncio.to_thread(drop_table, store, plan.table)
            kopf.event(body, type="Normal", reason="TableDropped",
                      message=f"dropped {plan.table.table} (deletionPolicy Delete)")
        else:
            kopf.event(body, type="Normal", reason="TableRetained",
                      message=f"kept {plan.table.table} (deletionPolicy Retain)")
    except (StoreError, StoreConnectionError) as exc:
        kopf.event(body, type="Warning", reason="DeletionBlocked", message=str(exc))
        raise kopf.TemporaryError(str(exc), delay=RETRY_DELAY) from exc
