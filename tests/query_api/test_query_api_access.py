"""The query API over HTTPS: who may read which store, and what bad calls are told.

Identities and permissions are the real apiserver's (TokenReview,
SubjectAccessReview against RBAC); the stores are the operator's.
"""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from query_api.api_support import EVENT_COUNT, STORE, QueryApi, Tenants
from trail_fixtures import ADMIN_NAMESPACE, Trail
from trail_operator.config import EVENT_HISTORY_NAME

pytestmark = pytest.mark.control_plane


def by_user(username: str) -> list[dict[str, str]]:
    return [{"AttributeKey": "Username", "AttributeValue": username}]


def test_reader_looks_up_the_events_of_a_store_in_its_namespace(
    api: QueryApi, tenants: Tenants,
) -> None:
    answer = api.lookup({"EventDataStore": f"{tenants.ns_a}/{STORE}",
                         "LookupAttributes": by_user(tenants.user_a)}, tenants.reader_token)
    assert answer.status_code == 200, answer.text
    body = answer.json()
    events = body["Events"]
    assert [e["EventId"] for e in events] == list(tenants.ids_a)  # newest first
    assert body["NextToken"] is None
    first = events[0]
    assert first["EventName"] == "CreateConfigMap"
    assert first["Username"] == tenants.user_a
    assert first["ReadOnly"] == "false"
    assert first["EventSource"] == "k8s.io"
    assert first["EventTime"].endswith("Z")
    assert first["Resources"] == [{"ResourceType": "configmaps", "ResourceName": "cm-0"}]
    record = orjson.loads(first["CloudTrailEvent"])
    assert record["eventID"] == first["EventId"]
    assert record["userIdentity"]["username"] == tenants.user_a


def test_lookup_pages_return_each_event_once(api: QueryApi, tenants: Tenants) -> None:
    seen: list[str] = []
    token = None
    pages = 0
    while True:
        body: dict[str, Any] = {"EventDataStore": f"{tenants.ns_a}/{STORE}",
                                "LookupAttributes": by_user(tenants.user_a), "MaxResults": 3}
        if token:
            body["NextToken"] = token
        answer = api.lookup(body, tenants.reader_token)
        assert answer.status_code == 200, answer.text
        pages += 1
        seen += [e["EventId"] for e in answer.json()["Events"]]
        token = answer.json()["NextToken"]
        if token is None:
            break
    assert pages == 3
    assert seen == list(tenants.ids_a)
    assert len(set(seen)) == EVENT_COUNT


def test_reader_queries_its_store_in_both_dialects(api: QueryApi, tenants: Tenants) -> None:
    ref = f"{tenants.ns_a}/{STORE}"
    statements = {
        "clickhouse": f"SELECT userIdentity.username AS user, count() AS n FROM `{ref}`"
                      f" WHERE userIdentity.username = '{tenants.user_a}' GROUP BY user",
        "trino": f'SELECT useridentity.username AS "user", count(*) AS n FROM "{ref}"'
                 f" WHERE useridentity.username = '{tenants.user_a}' GROUP BY 1",
    }
    for dialect, sql in statements.items():
        answer = api.query({"QueryStatement": sql, "Dialect": dialect}, tenants.reader_token)
        assert answer.status_code == 200, (dialect, answer.text)
        body = answer.json()
        assert [c["Name"] for c in body["Columns"]] == ["user", "n"]
        assert body["Rows"] == [[tenants.user_a, EVENT_COUNT]]
        assert body["NextPage"] is None
        stats = body["QueryStatistics"]
        assert stats["RowsScanned"] >= EVENT_COUNT
        assert stats["BytesScanned"] > 0
        assert isinstance(stats["ExecutionTimeInMillis"], int)


def test_query_pages_through_rows(api: QueryApi, tenants: Tenants) -> None:
    sql = (f"SELECT eventID FROM `{tenants.table_a}` WHERE userIdentity.username ="
           f" '{tenants.user_a}' ORDER BY eventTime DESC")
    seen: list[str] = []
    page: int | None = 1
    while page is not None:
        answer = api.query({"QueryStatement": sql, "Page": page, "PageSize": 3},
                           tenants.reader_token)
        assert answer.status_code == 200, answer.text
        seen += [row[0] for row in answer.json()["Rows"]]
        page = answer.json()["NextPage"]
    assert seen == list(tenants.ids_a)


def test_reader_is_refused_a_store_of_another_namespace(
    api: QueryApi, tenants: Tenants,
) -> None:
    answer = api.lookup({"EventDataStore": f"{tenants.ns_b}/{STORE}"}, tenants.reader_token)
    assert answer.status_code == 403, answer.text
    body = answer.json()
    assert body["errorCode"] == "AccessDeniedException"
    assert f"{tenants.ns_b}/{STORE}" in body["message"]
    assert "eventdatastores/events" in body["message"]


def test_reader_is_refused_the_event_history(api: QueryApi, tenants: Tenants) -> None:
    answer = api.lookup({}, tenants.reader_token)
    assert answer.status_code == 403, answer.text
    assert f"{ADMIN_NAMESPACE}/{EVENT_HISTORY_NAME}" in answer.json()["message"]


@pytest.mark.parametrize(
    "template",
    [
        "SELECT count() FROM `{b}`",
        "SELECT count() FROM `{a}` AS a JOIN `{b}` AS b ON a.eventID = b.eventID",
        "SELECT count() FROM `{a}` WHERE eventID IN (SELECT eventID FROM `{b}`)",
        "SELECT * FROM (SELECT eventName FROM `{a}` UNION ALL SELECT eventName FROM `{b}`)",
        "WITH x AS (SELECT eventID FROM `{b}`) SELECT count() FROM x",
        "SELECT count() FROM `{table_b}`",
        "SELECT count() FROM {uid_b}",
        "SELECT count() FROM `{history}`",
    ],
    ids=["from", "join", "in-subquery", "union", "cte", "table-name", "uid", "event-history"],
)
def test_sql_cannot_reach_a_store_the_reader_may_not_read(
    api: QueryApi, tenants: Tenants, template: str,
) -> None:
    sql = template.format(a=f"{tenants.ns_a}/{STORE}", b=f"{tenants.ns_b}/{STORE}",
                          table_b=tenants.table_b, uid_b=tenants.uid_b,
                          history=f"{ADMIN_NAMESPACE}/{EVENT_HISTORY_NAME}")
    answer = api.query({"QueryStatement": sql}, tenants.reader_token)
    assert answer.status_code == 403, answer.text
    body = answer.json()
    assert body["errorCode"] == "AccessDeniedException"
    assert "unknown or not permitted" in body["message"]


def test_a_missing_store_and_a_forbidden_one_look_the_same(
    api: QueryApi, tenants: Tenants,
) -> None:
    forbidden = api.query({"QueryStatement": f"SELECT 1 FROM `{tenants.ns_b}/{STORE}`"},
                          tenants.reader_token)
    missing = api.query({"QueryStatement": f"SELECT 1 FROM `{tenants.ns_b}/nothing`"},
                        tenants.reader_token)
    assert forbidden.status_code == missing.status_code == 403
    assert (forbidden.json()["message"].replace(f"{tenants.ns_b}/{STORE}", "REF")
            == missing.json()["message"].replace(f"{tenants.ns_b}/nothing", "REF"))


def test_admin_reads_the_event_history(
    api: QueryApi, tenants: Tenants, trail: Trail,
) -> None:
    token = trail.plane.admin_token
    answer = api.lookup({"LookupAttributes": by_user(tenants.user_history)}, token)
    assert answer.status_code == 200, answer.text
    assert [e["Username"] for e in answer.json()["Events"]] == [tenants.user_history]
    sql = (f"SELECT count() FROM `{ADMIN_NAMESPACE}/{EVENT_HISTORY_NAME}`"
           f" WHERE userIdentity.username = '{tenants.user_history}'")
    answer = api.query({"QueryStatement": sql}, token)
    assert answer.status_code == 200, answer.text
    assert answer.json()["Rows"] == [[1]]


@pytest.mark.parametrize("path", ["/LookupEvents", "/Query"])
@pytest.mark.parametrize("token", [None, "not-a-token", "eyJhbGciOiJSUzI1NiJ9.e30.c2ln"],
                         ids=["missing", "garbage", "forged-jwt"])
def test_callers_without_a_valid_token_get_401(
    api: QueryApi, tenants: Tenants, path: str, token: str | None,
) -> None:
    answer = api.post(path, {"QueryStatement": "SELECT 1"} if path == "/Query" else {}, token)
    assert answer.status_code == 401, answer.text
    assert answer.json()["errorCode"] == "Unauthorized"
    assert "token" in answer.json()["message"]
    assert answer.headers["WWW-Authenticate"].startswith("Bearer")


def test_a_malformed_query_gets_400_with_line_and_column(
    api: QueryApi, tenants: Tenants,
) -> None:
    sql = f"SELECT eventName,\n  count( FROM `{tenants.ns_a}/{STORE}`"
    answer = api.query({"QueryStatement": sql}, tenants.reader_token)
    assert answer.status_code == 400, answer.text
    body = answer.json()
    assert body["errorCode"] == "InvalidQueryStatementException"
    assert body["line"] == 2
    assert isinstance(body["column"], int)
    assert "line 2" in body["message"]


@pytest.mark.parametrize(
    ("sql", "needle"),
    [
        ("INSERT INTO `{a}` (eventName) VALUES ('x')", "INSERT statements are refused"),
        ("SELECT name FROM system.tables", "system.tables is refused"),
        ("SELECT * FROM file('/etc/passwd')", "table function file() is refused"),
        ("SELECT 1; SELECT 2", "exactly one query"),
    ],
    ids=["insert", "system-tables", "table-function", "two-statements"],
)
def test_refused_statements_get_400_and_the_reason(
    api: QueryApi, tenants: Tenants, sql: str, needle: str,
) -> None:
    answer = api.query({"QueryStatement": sql.format(a=f"{tenants.ns_a}/{STORE}")},
                       tenants.reader_token)
    assert answer.status_code == 400, answer.text
    assert needle in answer.json()["message"]


def test_an_engine_error_is_a_400_without_a_stack_trace(
    api: QueryApi, tenants: Tenants,
) -> None:
    answer = api.query({"QueryStatement": f"SELECT noSuchColumn FROM `{tenants.ns_a}/{STORE}`"},
                       tenants.reader_token)
    assert answer.status_code == 400, answer.text
    message = answer.json()["message"]
    assert "noSuchColumn" in message
    assert "Stack trace" not in message
    assert tenants.table_a not in message  # the store is named as the caller named it


@pytest.mark.parametrize(
    ("body", "code", "needle"),
    [
        (b"{not json", "MalformedJSON", "not valid JSON"),
        (b"[1]", "MalformedJSON", "JSON object"),
        ({"MaxResult": 3}, "InvalidParameterException", "MaxResult"),
        ({"LookupAttributes": [{"AttributeKey": "Username", "AttributeValue": "a"},
                               {"AttributeKey": "EventName", "AttributeValue": "b"}]},
         "InvalidLookupAttributesException", "at most one"),
        ({"LookupAttributes": [{"AttributeKey": "Colour", "AttributeValue": "red"}]},
         "InvalidLookupAttributesException", "Colour"),
        ({"StartTime": "yesterday"}, "InvalidParameterException", "StartTime"),
        ({"StartTime": "2024-05-02T00:00:00Z", "EndTime": "2024-05-01T00:00:00Z"},
         "InvalidTimeRangeException", "start"),
        ({"MaxResults": 0}, "InvalidMaxResultsException", "max_results"),
        ({"NextToken": "bogus"}, "InvalidNextTokenException", "next token"),
        ({"EventDataStore": "no-slash"}, "InvalidParameterException", "<namespace>/<name>"),
    ],
    ids=["bad-json", "not-object", "unknown-field", "two-attributes", "unknown-key",
         "bad-time", "reversed-window", "max-results", "next-token", "store-ref"],
)
def test_bad_lookup_calls_get_400_naming_the_problem(
    api: QueryApi, tenants: Tenants, body: Any, code: str, needle: str,
) -> None:
    if isinstance(body, dict):
        body = {"EventDataStore": f"{tenants.ns_a}/{STORE}", **body}
    answer = api.lookup(body, tenants.reader_token)
    assert answer.status_code == 400, answer.text
    assert answer.json()["errorCode"] == code
    assert needle in answer.json()["message"]


def test_a_readable_store_that_does_not_exist_gets_404(
    api: QueryApi, trail: Trail,
) -> None:
    answer = api.lookup({"EventDataStore": "nowhere/nothing"}, trail.plane.admin_token)
    assert answer.status_code == 404, answer.text
    assert "nowhere/nothing" in answer.json()["message"]


@pytest.mark.parametrize(
    ("body", "needle"),
    [
        ({}, "QueryStatement is required"),
        ({"QueryStatement": "SELECT 1", "Dialect": "postgres"}, "Dialect"),
        ({"QueryStatement": "SELECT 1", "PageSize": 10_001}, "PageSize"),
        ({"QueryStatement": "SELECT 1", "Page": 0}, "Page"),
    ],
)
def test_bad_query_calls_get_400_naming_the_problem(
    api: QueryApi, tenants: Tenants, body: dict[str, Any], needle: str,
) -> None:
    answer = api.query(body, tenants.reader_token)
    assert answer.status_code == 400, answer.text
    assert needle in answer.json()["message"]
