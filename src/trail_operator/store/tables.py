"""Creating, altering, dropping and measuring event tables."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from trail_operator.store.client import Store
from trail_operator.store.ddl import (
    ADDED_COLUMNS,
    TableSpec,
    build_add_columns,
    build_database_ddl,
    build_drop_table,
    build_settings_alter,
    build_table_ddl,
    build_ttl_alter,
    stale_settings,
)
from trail_operator.store.naming import qualified


@dataclass(frozen=True)
class TableStats:
    event_count: int
    bytes_on_disk: int
    oldest_event_time: datetime | None
    newest_event_time: datetime | None


def ensure_table(store: Store, spec: TableSpec) -> list[str]:
    """Create the table if missing; bring its TTL, columns and alterable settings
    to the spec (idempotent).

    Returns what it changed, in words, for events and logs.
    """
    ddl = current_ddl(store, spec)
    if ddl is None:
        store.command(build_database_ddl(spec.database, spec.cluster))
        store.command(build_table_ddl(spec))
        return [f"created with retention {spec.retention_days} days"]
    changes = []
    missing = [name for name in ADDED_COLUMNS if name not in ddl]
    if missing:
        store.command(build_add_columns(spec, missing))
        changes.append(f"added column(s) {', '.join(missing)}")
    stale = stale_settings(ddl)
    if stale:
        store.command(build_settings_alter(spec, stale))
        changes.append(f"set {', '.join(stale)}")
    current = retention_days_of(ddl)
    if current != spec.retention_days:
        store.command(build_ttl_alter(spec))
        changes.append(f"retention changed from {current} to {spec.retention_days} days")
    return changes


def current_ddl(store: Store, spec: TableSpec) -> str | None:
    rows = store.rows(
        "SELECT create_table_query FROM system.tables WHERE database = {db:String}"
        " AND name = {table:String}",
        parameters={"db": spec.database, "table": spec.table},
    )
    return str(rows[0][0]) if rows else None


def current_retention_days(store: Store, spec: TableSpec) -> int | None:
    """The retention the table's TTL has now, read back from its DDL."""
    ddl = current_ddl(store, spec)
    return None if ddl is None else retention_days_of(ddl)


def retention_days_of(ddl: str) -> int | None:
    marker = "toIntervalDay("
    start = ddl.find(marker)
    if start < 0:
        return None
    end = ddl.find(")", start)
    return int(ddl[start + len(marker) : end])


def table_exists(store: Store, database: str, table: str) -> bool:
    rows = store.rows(
        "SELECT count() FROM system.tables WHERE database = {db:String} AND name = {table:String}",
        parameters={"db": database, "table": table},
    )
    return bool(rows and rows[0][0])


def drop_table(store: Store, spec: TableSpec) -> None:
    store.command(build_drop_table(spec))


def expire_now(store: Store, spec: TableSpec) -> None:
    """Apply the TTL at once instead of at the next TTL merge (tests, operators' hands)."""
    store.command(f"ALTER TABLE {qualified(spec.database, spec.table)} MATERIALIZE TTL",
                  settings={"mutations_sync": 2})
    store.command(f"OPTIMIZE TABLE {qualified(spec.database, spec.table)} FINAL")


def table_stats(store: Store, database: str, table: str) -> TableStats:
    count, oldest, newest = store.rows(
        f"SELECT count(), min(eventTime), max(eventTime) FROM {qualified(database, table)}"
    )[0]
    (size,) = store.rows(
        "SELECT sum(bytes_on_disk) FROM system.parts WHERE database = {db:String}"
        " AND table = {table:String} AND active",
        parameters={"db": database, "table": table},
    )[0]
    has_rows = int(count) > 0
    return TableStats(
        event_count=int(count),
        bytes_on_disk=int(size or 0),
        oldest_event_time=oldest if has_rows else None,
        newest_event_time=newest if has_rows else None,
    )
