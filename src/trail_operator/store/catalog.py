"""The store catalog: which EventDataStores exist, their tables and selectors.

The operator writes it; the gateway and the query API read it. Keeping it in
ClickHouse rather than reading the Kubernetes API lets every component find
the stores through the one dependency they already share, in both the
embedded and the server layout, with no extra RBAC for the gateway.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import orjson

from trail_operator.store.ddl import build_database_ddl
from trail_operator.store.naming import qualified

if TYPE_CHECKING:  # the routes of a parse worker use StoreEntry, not the driver
    from trail_operator.store.client import Store

CATALOG_TABLE = "stores"


@dataclass(frozen=True)
class StoreEntry:
    """One EventDataStore as the data path sees it."""

    uid: str
    namespace: str
    name: str
    table: str
    retention_days: int
    ingestion_enabled: bool = True
    # Stores in the admin namespace see every namespace's events.
    all_namespaces: bool = False
    selectors: list[dict[str, Any]] = field(default_factory=list)

    @property
    def ref(self) -> str:
        return f"{self.namespace}/{self.name}"


def ensure_catalog(store: Store) -> None:
    store.command(build_database_ddl(store.database))
    store.command(
        f"CREATE TABLE IF NOT EXISTS {qualified(store.database, CATALOG_TABLE)} ("
        " uid String, namespace String, name String, table String, retentionDays UInt16,"
        " ingestionEnabled Bool, allNamespaces Bool, selectors String,"
        " deleted Bool, version UInt64"
        ") ENGINE = ReplacingMergeTree(version) ORDER BY uid"
    )


def _version() -> int:
    return time.time_ns()


def upsert_entry(store: Store, entry: StoreEntry) -> None:
    row = {
        "uid": entry.uid,
        "namespace": entry.namespace,
        "name": entry.name,
        "table": entry.table,
        "retentionDays": entry.retention_days,
        "ingestionEnabled": entry.ingestion_enabled,
        "allNamespaces": entry.all_namespaces,
        "selectors": orjson.dumps(entry.selectors).decode(),
        "deleted": False,
        "version": _version(),
    }
    store.insert_json_each_row(CATALOG_TABLE, orjson.dumps(row))


def remove_entry(store: Store, uid: str) -> None:
    row = {"uid": uid, "deleted": True, "version": _version()}
    store.insert_json_each_row(CATALOG_TABLE, orjson.dumps(row))


def list_entries(store: Store) -> list[StoreEntry]:
    return _select(store, "NOT deleted")


def get_entry(store: Store, uid: str) -> StoreEntry | None:
    found = _select(store, "NOT deleted AND uid = {uid:String}", {"uid": uid})
    return found[0] if found else None


def _select(store: Store, where: str, parameters: dict[str, Any] | None = None) -> list[StoreEntry]:
    rows = store.rows(
        "SELECT uid, namespace, name, table, retentionDays, ingestionEnabled, allNamespaces,"
        f" selectors FROM {qualified(store.database, CATALOG_TABLE)} FINAL"
        f" WHERE {where} ORDER BY namespace, name",
        parameters=parameters,
    )
    return [
        StoreEntry(
            uid=uid, namespace=ns, name=name, table=table, retention_days=int(days),
            ingestion_enabled=bool(enabled), all_namespaces=bool(all_ns),
            selectors=orjson.loads(selectors) if selectors else [],
        )
        for uid, ns, name, table, days, enabled, all_ns, selectors in rows
    ]
