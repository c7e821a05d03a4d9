"""Running a prepared query: pages, statistics, limits, and a session left as it was."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import orjson
import pytest

from trail_operator.query import sql as sql_module
from trail_operator.query.sql import (
    QUERY_LIMIT_SETTINGS,
    InvalidPageError,
    PreparedQuery,
    QueryLimitError,
    prepare_query,
    run_query,
)
from trail_operator.store.client import Store

REF = "team/limits"


@pytest.fixture(scope="module")
def table(make_table: Callable[..., str], events: Any) -> str:
    return make_table(events.generate(300, seed=51))


def prepare(table: str, sql: str) -> PreparedQuery:
    return prepare_query(sql, "clickhouse", lambda ref: table if ref == REF else None, "trail")


@pytest.fixture
def limits(monkeypatch: pytest.MonkeyPatch) -> Callable[..., None]:
    """Lower some limits for one test, so hitting them is quick."""

    def lower(**changed: int | float) -> None:
        monkeypatch.setattr(sql_module, "QUERY_LIMIT_SETTINGS", {**QUERY_LIMIT_SETTINGS, **changed})

    return lower


def test_pages_return_every_row_once(query_store: Store, table: str) -> None:
    prepared = prepare(table, f"SELECT eventID FROM `{REF}` ORDER BY eventTime, eventID")
    rows: list[list[Any]] = []
    page = 1
    while True:
        result = run_query(query_store, prepared, page_size=70, page=page)
        rows.extend(result.rows)
        if not result.has_more:
            break
        assert len(result.rows) == 70
        page += 1
    assert page == 5
    assert len(rows) == len({r[0] for r in rows}) == 300


def test_a_query_with_its_own_limit_is_paged_within_it(query_store: Store, table: str) -> None:
    prepared = prepare(table, f"SELECT eventID FROM `{REF}` ORDER BY eventID LIMIT 15")
    first = run_query(query_store, prepared, page_size=10)
    second = run_query(query_store, prepared, page_size=10, page=2)
    assert (len(first.rows), first.has_more) == (10, True)
    assert (len(second.rows), second.has_more) == (5, False)


def test_columns_and_json_values(query_store: Store, table: str) -> None:
    prepared = prepare(
        table,
        f"SELECT eventTime, userIdentity, readOnly, count() OVER () AS total FROM `{REF}`"
        " ORDER BY eventTime LIMIT 1",
    )
    result = run_query(query_store, prepared)
    assert [c.name for c in result.columns] == ["eventTime", "userIdentity", "readOnly", "total"]
    assert result.columns[0].type == "DateTime64(3, 'UTC')"
    event_time, identity, read_only, total = result.rows[0]
    assert event_time.endswith("Z")
    assert isinstance(identity, dict)
    assert "username" in identity
    assert isinstance(read_only, bool)
    assert total == 300


def test_stats_report_rows_and_bytes_scanned(query_store: Store, table: str) -> None:
    result = run_query(
        query_store, prepare(table, f"SELECT count() FROM `{REF}` WHERE userAgent != ''")
    )
    assert result.rows == [[300]]
    assert result.stats.rows_scanned == 300
    assert result.stats.bytes_scanned > 0
    assert result.stats.elapsed_ms > 0


def test_running_too_long_is_a_limit_error(
    query_store: Store, table: str, limits: Callable[..., None]
) -> None:
    limits(max_execution_time=1)
    prepared = prepare(
        table,
        "SELECT sum(cityHash64(a.requestID, b.requestID, c.requestID, d.requestID))"
        f" FROM `{REF}` AS a CROSS JOIN `{REF}` AS b"
        f" CROSS JOIN `{REF}` AS c CROSS JOIN `{REF}` AS d",
    )
    with pytest.raises(QueryLimitError) as raised:
        run_query(query_store, prepared)
    assert raised.value.limit in ("TIMEOUT_EXCEEDED", "TOO_SLOW")
    assert "longer than 1 s" in str(raised.value)
    assert "narrow the time range" in str(raised.value)


def test_reading_too_many_rows_is_a_limit_error(
    query_store: Store, table: str, limits: Callable[..., None]
) -> None:
    limits(max_rows_to_read=100)
    with pytest.raises(QueryLimitError) as raised:
        run_query(query_store, prepare(table, f"SELECT count() FROM `{REF}` WHERE userAgent != ''"))
    assert raised.value.limit == "TOO_MANY_ROWS"
    assert "more than 100 rows" in str(raised.value)


def test_too_large_a_result_is_a_limit_error(
    query_store: Store, table: str, limits: Callable[..., None]
) -> None:
    limits(max_result_bytes=2000)
    with pytest.raises(QueryLimitError) as raised:
        run_query(query_store, prepare(table, f"SELECT * FROM `{REF}`"), page_size=200)
    assert raised.value.limit == "TOO_MANY_ROWS_OR_BYTES"
    assert "select fewer rows or columns" in str(raised.value)


def test_using_too_much_memory_is_a_limit_error(
    query_store: Store, table: str, limits: Callable[..., None]
) -> None:
    limits(max_memory_usage=20 * 1024**2)
    prepared = prepare(
        table,
        "SELECT length(groupArray(repeat(a.requestID, 1000)))"
        f" FROM `{REF}` AS a CROSS JOIN `{REF}` AS b",
    )
    with pytest.raises(QueryLimitError) as raised:
        run_query(query_store, prepared)
    assert raised.value.limit == "MEMORY_LIMIT_EXCEEDED"
    assert "20 MiB" in str(raised.value)


def test_the_limits_ride_in_the_query_with_readonly_last(query_store: Store, table: str) -> None:
    clause = sql_module._settings_clause(QUERY_LIMIT_SETTINGS)
    assert "max_execution_time = 60" in clause
    assert clause.endswith("readonly = 1"), "readonly must come last in the clause"
    assert run_query(query_store, prepare(table, f"SELECT count() FROM `{REF}`")).rows == [[300]]


def test_readonly_does_not_leak_into_the_shared_session(
    query_store: Store, table: str, make_table: Callable[..., str], events: Any
) -> None:
    run_query(query_store, prepare(table, f"SELECT count() FROM `{REF}`"))
    assert query_store.rows("SELECT getSetting('readonly')") == [(0,)]
    assert query_store.rows("SELECT getSetting('max_execution_time')") == [(0,)]
    # The other components share this client and must still write.
    scratch = make_table(events.generate(1, seed=52))
    query_store.insert_json_each_row(scratch, orjson.dumps(events.generate(1, seed=53)[0]))
    assert query_store.rows(f"SELECT count() FROM `trail`.`{scratch}`") == [(2,)]


@pytest.mark.parametrize(("page_size", "page"), [(0, 1), (10_001, 1), (10, 0), (10, -1), (True, 1)])
def test_invalid_pages_are_refused(
    query_store: Store, table: str, page_size: int, page: int
) -> None:
    with pytest.raises(InvalidPageError):
        run_query(query_store, prepare(table, "SELECT 1"), page_size=page_size, page=page)
