"""Reconciling twice changes nothing: what a restarted operator relies on."""

from __future__ import annotations

from trail_operator.config import Settings
from trail_operator.operator.reconcile import apply_plan, plan_store
from trail_operator.store.catalog import CATALOG_TABLE, ensure_catalog, get_entry
from trail_operator.store.client import Store


def catalog_rows(store: Store) -> int:
    return int(store.rows(f"SELECT count() FROM trail.`{CATALOG_TABLE}`")[0][0])


def test_second_reconcile_changes_nothing(store: Store) -> None:
    ensure_catalog(store)
    settings = Settings(admin_namespace="trail-system")
    plan = plan_store("idem", "audit", "uid-idem", {"retentionDays": 45}, settings,
                      store.database)
    first = apply_plan(store, plan)
    assert first.changes
    rows_after_first = catalog_rows(store)
    second = apply_plan(store, plan)
    assert second.changes == ()
    assert catalog_rows(store) == rows_after_first
    assert get_entry(store, "uid-idem") == plan.entry


def test_store_in_admin_namespace_sees_all_namespaces(store: Store) -> None:
    settings = Settings(admin_namespace="trail-system")
    admin = plan_store("trail-system", "history", "u1", {}, settings, store.database)
    tenant = plan_store("team-a", "audit", "u2", {}, settings, store.database)
    assert admin.entry.all_namespaces
    assert not tenant.entry.all_namespaces
    assert admin.table.table != tenant.table.table
