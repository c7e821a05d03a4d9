"""CloudTrail Lake (Trino) SQL gives the answers Trino would, run on ClickHouse."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

import pytest

from trail_operator.query.sql import (
    QueryRejectedError,
    QueryResult,
    prepare_query,
    run_query,
)
from trail_operator.store.client import Store

REF = "team/lake"


@pytest.fixture(scope="module")
def rich(make_table: Callable[..., str], events: Any) -> str:
    """One event whose every field the cases below read."""
    event = events.one(
        31,
        timedelta(hours=2),
        eventName="UpdateDeployment",
        readOnly=False,
        userIdentity={
            "type": "User", "username": "alice", "groups": ["system:authenticated", "dev"]
        },
        requestParameters={
            "name": "web",
            "spec": {"replicas": 3, "paused": False},
            "containers": [{"image": "web:1"}, {"image": "sidecar:2"}],
            "ratio": 0.5,
        },
        resources=[
            {"type": "deployments", "name": "web", "namespace": "default", "apiGroup": "apps"},
            {"type": "pods", "name": "web-1", "namespace": "default"},
        ],
    )  # fmt: skip
    event.pop("errorCode", None)
    event.pop("errorMessage", None)
    return make_table([event])


@pytest.fixture(scope="module")
def many(make_table: Callable[..., str], events: Any) -> tuple[str, list[dict[str, Any]]]:
    generated = events.generate(60, seed=32)
    return make_table(generated), generated


def trino(store: Store, table: str, sql: str, page_size: int = 100) -> QueryResult:
    prepared = prepare_query(sql, "trino", lambda ref: table if ref == REF else None, "trail")
    return run_query(store, prepared, page_size=page_size)


def value(store: Store, table: str, expression: str) -> Any:
    (row,) = trino(store, table, f'SELECT {expression} FROM "{REF}"').rows
    return row[0]


def as_time(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ("json_extract_scalar(requestParameters, '$.name')", "web"),
        ("json_extract_scalar(requestParameters, '$.spec.replicas')", "3"),
        ("json_extract_scalar(requestParameters, '$.spec.paused')", "false"),
        ("json_extract_scalar(requestParameters, '$.ratio')", "0.5"),
        ("json_extract_scalar(requestParameters, '$.containers[1].image')", "sidecar:2"),
        ("json_extract_scalar(requestParameters, '$.spec')", None),
        ("json_extract_scalar(requestParameters, '$.missing')", None),
        ("json_extract(requestParameters, '$.spec')", '{"replicas":3,"paused":false}'),
        ("element_at(requestParameters, 'name')", "web"),
        ("requestParameters['spec']", '{"replicas":3,"paused":false}'),
        ("element_at(requestParameters, 'nothing')", None),
        ("element_at(resources, 2).name", "web-1"),
        ("element_at(userIdentity.groups, 2)", "dev"),
        ("cardinality(resources)", 2),
        ("contains(userIdentity.groups, 'dev')", 1),
        ("array_position(userIdentity.groups, 'dev')", 2),
        ("any_match(userIdentity.groups, g -> g = 'dev')", 1),
        ("none_match(userIdentity.groups, g -> g = 'ops')", 1),
        ("regexp_like(eventName, '^Update')", 1),
        ("regexp_like(eventName, 'Deploy')", 1),
        ("split_part('a/b/c', '/', 2)", "b"),
        ("date_diff('hour', from_iso8601_timestamp('2024-05-01T10:00:00Z'),"
         " from_iso8601_timestamp('2024-05-02T12:30:00Z'))", 26),
        ("date_format(from_iso8601_timestamp('2024-05-01T10:42:07Z'), '%Y-%m-%d %H:%i:%s')",
         "2024-05-01 10:42:07"),
        ("format_datetime(from_iso8601_timestamp('2024-05-01T10:42:07Z'), 'yyyy-MM-dd HH:mm')",
         "2024-05-01 10:42"),
        ("to_unixtime(from_iso8601_timestamp('2024-05-01T10:00:00.500Z'))", 1714557600.5),
        ("url_extract_host('https://example.com/a?b=1')", "example.com"),
        ("json_parse('{\"a\":1}')", '{"a":1}'),
        ("sequence(1, 3)", [1, 2, 3]),
        ("errorCode IS NULL", 1),
        ("errorCode IS NOT NULL", 0),
        ("userIdentity.username IS NOT NULL", 1),
        ("EVENTNAME", "UpdateDeployment"),
        ("useridentity.USERNAME", "alice"),
        ("if(readonly, 'read', 'write')", "write"),
    ],
)  # fmt: skip
def test_trino_expression_means_the_same_on_clickhouse(
    query_store: Store, rich: str, expression: str, expected: Any
) -> None:
    assert value(query_store, rich, expression) == expected


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ("from_iso8601_timestamp('2024-05-01T10:00:00.123Z')", "2024-05-01T10:00:00.123+00:00"),
        ("from_iso8601_timestamp('2024-05-01T12:00:00.123+02:00')",
         "2024-05-01T10:00:00.123+00:00"),
        ("date_trunc('hour', from_iso8601_timestamp('2024-05-01T10:42:07Z'))",
         "2024-05-01T10:00:00+00:00"),
        ("date_trunc('day', from_iso8601_timestamp('2024-05-01T10:42:07Z'))",
         "2024-05-01T00:00:00+00:00"),
        ("date_parse('2024-05-01 10:42:07', '%Y-%m-%d %H:%i:%s')", "2024-05-01T10:42:07+00:00"),
        ("parse_datetime('2024-05-01 10:42', 'yyyy-MM-dd HH:mm')", "2024-05-01T10:42:00+00:00"),
        ("timestamp '2024-05-01 10:42:07'", "2024-05-01T10:42:07+00:00"),
    ],
)  # fmt: skip
def test_trino_times_are_utc_and_keep_milliseconds(
    query_store: Store, rich: str, expression: str, expected: str
) -> None:
    assert as_time(value(query_store, rich, expression)) == datetime.fromisoformat(expected)


def test_aggregates_count_if_approx_distinct_bool_or_and_approx_percentile(
    query_store: Store, many: tuple[str, list[dict[str, Any]]]
) -> None:
    table, generated = many
    (row,) = trino(
        query_store, table,
        f"""SELECT approx_distinct(eventName), count_if(errorCode IS NOT NULL),
                   bool_or(readOnly), bool_and(readOnly),
                   approx_percentile(cardinality(userIdentity.groups), 0.5),
                   arbitrary(recipientAccountId), count(DISTINCT namespace)
            FROM "{REF}" """,
    ).rows  # fmt: skip
    assert row == [
        len({e["eventName"] for e in generated}),
        sum(1 for e in generated if e.get("errorCode")),
        True,
        False,
        2,
        "local",
        len({e["namespace"] for e in generated}),
    ]


def test_unnest_of_an_array(query_store: Store, rich: str) -> None:
    result = trino(
        query_store, rich,
        f'SELECT g.grp FROM "{REF}" CROSS JOIN UNNEST(userIdentity.groups) AS g(grp) ORDER BY 1',
    )  # fmt: skip
    assert result.rows == [["dev"], ["system:authenticated"]]


def test_unnest_of_an_array_with_a_comma_join(query_store: Store, rich: str) -> None:
    result = trino(
        query_store, rich, f'SELECT grp FROM "{REF}", UNNEST(userIdentity.groups) AS g(grp)'
    )
    assert sorted(result.rows) == [["dev"], ["system:authenticated"]]


def test_unnest_of_rows_expands_their_fields_by_position(query_store: Store, rich: str) -> None:
    result = trino(
        query_store, rich,
        f'SELECT r.name, type FROM "{REF}" CROSS JOIN UNNEST(resources) AS r(type, name)'
        " ORDER BY r.name",
    )  # fmt: skip
    assert [c.name for c in result.columns] == ["name", "type"]
    assert result.rows == [["web", "deployments"], ["web-1", "pods"]]


def test_unnest_with_one_alias_reads_row_fields_by_name(query_store: Store, rich: str) -> None:
    result = trino(
        query_store, rich,
        f'SELECT r.name, r.namespace FROM "{REF}" CROSS JOIN UNNEST(resources) AS r ORDER BY 1',
    )  # fmt: skip
    assert result.rows == [["web", "default"], ["web-1", "default"]]


def test_unnest_with_ordinality(query_store: Store, rich: str) -> None:
    result = trino(
        query_store, rich,
        f'SELECT grp, n FROM "{REF}"'
        " CROSS JOIN UNNEST(userIdentity.groups) WITH ORDINALITY AS g(grp, n) ORDER BY n",
    )  # fmt: skip
    assert result.rows == [["system:authenticated", 1], ["dev", 2]]


def test_left_join_unnest_keeps_rows_with_empty_arrays(
    query_store: Store, make_table: Callable[..., str], events: Any
) -> None:
    table = make_table(
        [events.one(33, timedelta(hours=1), userIdentity={"type": "User", "username": "x"})]
    )
    result = trino(
        query_store, table,
        f'SELECT userIdentity.username FROM "{REF}"'
        " LEFT JOIN UNNEST(userIdentity.groups) AS g(grp) ON TRUE",
    )  # fmt: skip
    assert result.rows == [["x"]]


def test_unnest_joined_with_a_condition_is_refused(query_store: Store, rich: str) -> None:
    with pytest.raises(QueryRejectedError, match="put other conditions in WHERE"):
        trino(
            query_store, rich,
            f'SELECT * FROM "{REF}" JOIN UNNEST(userIdentity.groups) AS g(grp) ON grp = \'dev\'',
        )  # fmt: skip


def test_unnest_without_a_table_is_refused(query_store: Store, rich: str) -> None:
    with pytest.raises(QueryRejectedError, match="arrayJoin"):
        trino(query_store, rich, "SELECT x FROM UNNEST(ARRAY[1, 2]) AS t(x)")


def test_json_path_wildcards_are_refused_not_mistranslated(query_store: Store, rich: str) -> None:
    with pytest.raises(QueryRejectedError, match="not supported"):
        value(query_store, rich, "json_extract_scalar(requestParameters, '$.containers[*].image')")


def test_unnamed_result_columns_are_named_as_trino_names_them(
    query_store: Store, rich: str
) -> None:
    result = trino(query_store, rich, f'SELECT eventName, count(*), 1 + 1 FROM "{REF}" GROUP BY 1')
    assert [c.name for c in result.columns] == ["eventName", "_col1", "_col2"]


def test_alias_named_like_a_column_does_not_shadow_it(query_store: Store, rich: str) -> None:
    result = trino(
        query_store, rich,
        f"""SELECT date_trunc('hour', eventTime) AS eventTime, count(*) AS calls
            FROM "{REF}" GROUP BY date_trunc('hour', eventTime)""",
    )  # fmt: skip
    assert result.rows[0][1] == 1


def test_case_of_aliases_does_not_matter(query_store: Store, rich: str) -> None:
    result = trino(
        query_store, rich,
        f'SELECT eventName AS Name, COUNT(*) AS Calls FROM "{REF}" GROUP BY eventName'
        " ORDER BY calls DESC, name",
    )  # fmt: skip
    assert result.rows == [["UpdateDeployment", 1]]


def test_outer_join_produces_nulls_as_in_trino(query_store: Store, rich: str) -> None:
    result = trino(
        query_store, rich,
        f"""SELECT a.eventName, b.eventName FROM "{REF}" AS a
            LEFT JOIN (SELECT eventName FROM "{REF}" WHERE eventName = 'none') AS b
            ON a.eventName = b.eventName""",
    )  # fmt: skip
    assert result.rows == [["UpdateDeployment", None]]


def test_order_by_after_a_union_orders_the_whole_union(query_store: Store, rich: str) -> None:
    result = trino(
        query_store, rich,
        f"""SELECT 'z' AS v FROM "{REF}" UNION ALL SELECT 'a' AS v FROM "{REF}"
            ORDER BY v LIMIT 1""",
    )  # fmt: skip
    assert result.rows == [["a"]]


def test_case_of_table_aliases_does_not_matter(query_store: Store, rich: str) -> None:
    result = trino(query_store, rich, f'SELECT E.EVENTNAME FROM "{REF}" AS e')
    assert result.rows == [["UpdateDeployment"]]
