"""Table DDL and identifiers, checked as text and against the real engine."""

from __future__ import annotations

import pytest

from trail_operator.query.lookup import LookupRequest, lookup
from trail_operator.store.client import Store
from trail_operator.store.ddl import (
    LOOKUP_USERNAME_COLUMN,
    TableSpec,
    build_table_ddl,
    build_ttl_alter,
    stale_settings,
)
from trail_operator.store.naming import (
    UnsafeIdentifierError,
    qualified,
    quote_identifier,
    table_name_for,
)
from trail_operator.store.tables import (
    current_ddl,
    current_retention_days,
    ensure_table,
    table_exists,
)


def test_long_names_sharing_a_prefix_still_get_distinct_tables() -> None:
    base = "x" * 60
    assert table_name_for("team", base + "a") != table_name_for("team", base + "b")


def test_table_names_are_plain_identifiers() -> None:
    name = table_name_for("my-team", "audit.prod")
    assert name.replace("_", "").isalnum()
    assert name.startswith("eds_my_team__audit_prod_")


@pytest.mark.parametrize("hostile", ["a`; DROP TABLE x; --", "", "a\\b", "nul\x00"])
def test_identifiers_that_could_break_out_are_refused(hostile: str) -> None:
    with pytest.raises(UnsafeIdentifierError):
        quote_identifier(hostile)


def test_cluster_ddl_uses_on_cluster_and_replicated_engine() -> None:
    spec = TableSpec("trail", "eds_t", 30, cluster="prod")
    ddl = build_table_ddl(spec)
    assert "ON CLUSTER `prod`" in ddl
    assert "ReplicatedReplacingMergeTree" in ddl
    assert build_ttl_alter(spec).endswith("MODIFY TTL toDateTime(eventTime) + toIntervalDay(30)")


def test_ensure_table_is_idempotent_and_reports_what_changed(store: Store) -> None:
    spec = TableSpec(store.database, table_name_for("ddl", "idempotent"), 14)
    assert ensure_table(store, spec) == ["created with retention 14 days"]
    assert ensure_table(store, spec) == []
    assert table_exists(store, spec.database, spec.table)
    longer = TableSpec(spec.database, spec.table, 60)
    assert ensure_table(store, longer) == ["retention changed from 14 to 60 days"]
    assert current_retention_days(store, spec) == 60


def test_a_table_of_an_earlier_version_gets_the_lookup_column_and_answers_by_username(
        store: Store) -> None:
    spec = TableSpec(store.database, table_name_for("ddl", "earlier"), 30)
    earlier = build_table_ddl(spec).replace(
        f",\n    `{LOOKUP_USERNAME_COLUMN}` LowCardinality(String) MATERIALIZED"
        " userIdentity.username", "").replace(
        f",\n    INDEX idx_lookup_username {LOOKUP_USERNAME_COLUMN}"
        " TYPE bloom_filter(0.01) GRANULARITY 4", "")
    assert LOOKUP_USERNAME_COLUMN not in earlier
    store.command(earlier)
    store.command(
        f"INSERT INTO {qualified(spec.database, spec.table)} (eventID, eventTime, userIdentity)"
        " SELECT generateUUIDv4(), now64(3), tuple('User', '', '', '', '', 'alice', '', [], map(),"
        " tuple('', '', []), '', '')")
    assert ensure_table(store, spec) == [f"added column(s) {LOOKUP_USERNAME_COLUMN}"]
    assert ensure_table(store, spec) == []
    page = lookup(store, spec.table, LookupRequest("Username", "alice"))
    assert [record["userIdentity"]["username"] for record in page.records] == ["alice"]
    assert LOOKUP_USERNAME_COLUMN not in page.records[0]


def test_the_embedded_engine_runs_merges_at_a_lower_cpu_priority(store: Store) -> None:
    assert store.embedded
    nice = store.rows("SELECT value FROM system.server_settings"
                      " WHERE name = 'os_threads_nice_value_merge_mutate'")
    assert nice == [("10",)]


def test_a_table_made_by_an_earlier_version_is_given_the_merge_and_part_settings(
        store: Store) -> None:
    spec = TableSpec(store.database, table_name_for("ddl", "merges"), 30)
    earlier = (build_table_ddl(spec).replace(", merge_selector_base = 10", "")
               .replace(", min_bytes_for_wide_part = 33554432", ""))
    assert "merge_selector_base" not in earlier
    assert "min_bytes_for_wide_part" not in earlier
    store.command(earlier)
    assert ensure_table(store, spec) == ["set merge_selector_base, min_bytes_for_wide_part"]
    assert ensure_table(store, spec) == []
    ddl = current_ddl(store, spec)
    assert ddl is not None
    assert "merge_selector_base = 10" in ddl
    assert "min_bytes_for_wide_part = 33554432" in ddl


def test_a_setting_is_stale_unless_its_exact_value_is_set() -> None:
    current = "merge_selector_base = 10, min_bytes_for_wide_part = 33554432"
    assert stale_settings(f"SETTINGS index_granularity = 8192, {current}") == []
    assert stale_settings("SETTINGS merge_selector_base = 100, min_bytes_for_wide_part = 33554432"
                          ) == ["merge_selector_base"]
    assert stale_settings("SETTINGS merge_selector_base = 10.5") == [
        "merge_selector_base", "min_bytes_for_wide_part"]
    assert stale_settings("SETTINGS index_granularity = 8192, merge_selector_base = 10") == [
        "min_bytes_for_wide_part"]
