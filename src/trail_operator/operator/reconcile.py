"""From an EventDataStore spec to its table, catalog entry and status.

Plain functions, tested without Kopf: the handlers only call these and post
the result. Every function here is idempotent, so a restarted operator (or a
timer running beside a handler) converges on the same state and changes
nothing that is already right.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from trail_operator.config import Settings
from trail_operator.operator.conditions import Condition, set_condition
from trail_operator.store.catalog import StoreEntry, get_entry, upsert_entry
from trail_operator.store.client import Store
from trail_operator.store.ddl import TableSpec
from trail_operator.store.naming import table_name_for
from trail_operator.store.tables import TableStats, ensure_table, table_stats

STATE_CREATED = "Created"
STATE_ENABLED = "Enabled"
STATE_STOPPED = "StoppedIngestion"
STATE_PENDING_DELETION = "PendingDeletion"

DEFAULT_RETENTION_DAYS = 366


@dataclass(frozen=True)
class StorePlan:
    """What an EventDataStore should be in ClickHouse."""

    entry: StoreEntry
    table: TableSpec
    deletion_policy: str


def plan_store(
    namespace: str, name: str, uid: str, spec: Mapping[str, Any], settings: Settings,
    database: str, cluster: str | None = None,
) -> StorePlan:
    retention = int(spec.get("retentionDays", DEFAULT_RETENTION_DAYS))
    table = table_name_for(namespace, name)
    entry = StoreEntry(
        uid=uid,
        namespace=namespace,
        name=name,
        table=table,
        retention_days=retention,
        ingestion_enabled=bool(spec.get("ingestionEnabled", True)),
        all_namespaces=namespace == settings.admin_namespace,
        selectors=[dict(selector) for selector in spec.get("advancedEventSelectors") or []],
    )
    return StorePlan(
        entry=entry,
        table=TableSpec(database=database, table=table, retention_days=retention, cluster=cluster),
        deletion_policy=str(spec.get("deletionPolicy", "Retain")),
    )


@dataclass(frozen=True)
class ApplyOutcome:
    stats: TableStats
    # What changed in this pass, for Kubernetes Events; empty when nothing did.
    changes: tuple[str, ...]


def apply_plan(store: Store, plan: StorePlan) -> ApplyOutcome:
    """Create or alter the table and publish the catalog entry (idempotent)."""
    changes = [f"table {plan.table.database}.{plan.table.table}: {change}"
               for change in ensure_table(store, plan.table)]
    if get_entry(store, plan.entry.uid) != plan.entry:
        upsert_entry(store, plan.entry)
        changes.append("routing updated" + ("" if plan.entry.ingestion_enabled
                                            else " (ingestion stopped)"))
    return ApplyOutcome(stats=table_stats(store, plan.table.database, plan.table.table),
                        changes=tuple(changes))


def stats_status(stats: TableStats) -> dict[str, Any]:
    return {
        "eventCount": stats.event_count,
        "bytesOnDisk": stats.bytes_on_disk,
        "oldestEventTime": _iso(stats.oldest_event_time),
        "newestEventTime": _iso(stats.newest_event_time),
    }


def ready_status(
    plan: StorePlan, stats: TableStats, generation: int | None,
    conditions: Sequence[Condition] | None,
) -> dict[str, Any]:
    enabled = plan.entry.ingestion_enabled
    message = (
        f"table {plan.table.database}.{plan.table.table} ready, retention "
        f"{plan.table.retention_days} days"
        + ("" if enabled else "; ingestion stopped (spec.ingestionEnabled is false)")
    )
    return {
        "state": STATE_ENABLED if enabled else STATE_STOPPED,
        "table": f"{plan.table.database}.{plan.table.table}",
        "observedGeneration": generation,
        **stats_status(stats),
        "conditions": set_condition(
            conditions, "Ready", True, "TableReady" if enabled else "IngestionStopped",
            message, generation,
        ),
    }


def failed_status(
    reason: str, message: str, generation: int | None, conditions: Sequence[Condition] | None,
) -> dict[str, Any]:
    return {
        "observedGeneration": generation,
        "conditions": set_condition(conditions, "Ready", False, reason, message, generation),
    }


def _iso(moment: Any) -> str | None:
    if moment is None:
        return None
    return str(moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z")
