"""Each sample Lake query gives the same answer in Trino and in ClickHouse SQL."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import datetime
from typing import Any

import pytest

from trail_operator.query.samples import (
    EDS_PLACEHOLDER,
    SAMPLE_QUERIES,
    SAMPLE_SOURCE_IP,
    SAMPLE_USER,
    SampleQuery,
)
from trail_operator.query.sql import prepare_query, run_query
from trail_operator.store.client import Store

REF = "team-a/audit"
_ISO_TIME = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?Z$")


@pytest.fixture(scope="module")
def table(make_table: Callable[..., str], events: Any) -> str:
    return make_table(events.generate(400, seed=61))


def normalized(value: Any) -> Any:
    """Times compare as instants: `date_trunc` gives DateTime, `toStartOfHour` DateTime64."""
    if isinstance(value, str) and _ISO_TIME.match(value):
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    if isinstance(value, list):
        return [normalized(v) for v in value]
    return value


def answer(store: Store, table: str, sample: SampleQuery, dialect: str) -> list[list[Any]]:
    sql = sample.render(dialect, REF)  # type: ignore[arg-type]
    prepared = prepare_query(sql, dialect, lambda ref: table if ref == REF else None, "trail")  # type: ignore[arg-type]
    result = run_query(store, prepared, page_size=1000)
    assert not result.has_more
    return [normalized(row) for row in result.rows]


@pytest.mark.parametrize("sample", SAMPLE_QUERIES, ids=lambda sample: sample.name)
def test_sample_gives_the_same_answer_in_trino_and_clickhouse(
    query_store: Store, table: str, sample: SampleQuery
) -> None:
    from_trino = answer(query_store, table, sample, "trino")
    from_clickhouse = answer(query_store, table, sample, "clickhouse")
    assert from_trino, f"{sample.name} should find something in the test data"
    assert from_trino == from_clickhouse


def test_samples_cover_the_questions_people_ask() -> None:
    names = {sample.name for sample in SAMPLE_QUERIES}
    assert {
        "top_event_names", "top_users", "failed_calls_by_error_code",
        "user_activity_by_hour", "calls_from_source_ip",
    } <= names  # fmt: skip
    for sample in SAMPLE_QUERIES:
        assert EDS_PLACEHOLDER in sample.trino
        assert EDS_PLACEHOLDER in sample.clickhouse


def test_samples_filter_on_values_the_test_data_contains(query_store: Store, table: str) -> None:
    rows = query_store.rows(
        "SELECT countIf(userIdentity.username = {u:String}),"
        f" countIf(sourceIPAddress = {{ip:String}}) FROM `trail`.`{table}`",
        parameters={"u": SAMPLE_USER, "ip": SAMPLE_SOURCE_IP},
    )
    assert all(count > 0 for count in rows[0])


def test_render_quotes_the_ref_for_each_dialect() -> None:
    sample = SAMPLE_QUERIES[0]
    assert '"ns/name"' in sample.render("trino", "ns/name")
    assert "`ns/name`" in sample.render("clickhouse", "ns/name")
