"""LookupEvents: attributes, window, order, pages, tokens, retried copies, errors."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from trail_operator.query.lookup import (
    ATTRIBUTE_KEYS,
    InvalidLookupAttributeError,
    InvalidMaxResultsError,
    InvalidNextTokenError,
    InvalidTimeRangeError,
    LookupRequest,
    LookupRequestError,
    lookup,
    parse_lookup_attribute,
    parse_lookup_time,
)
from trail_operator.store.client import Store

Event = dict[str, Any]


def _time(event: Event) -> datetime:
    return datetime.fromisoformat(event["eventTime"].replace("Z", "+00:00"))


@pytest.fixture(scope="module")
def data(make_table: Callable[..., str], events: Any) -> tuple[str, list[Event]]:
    base = events.generate(120, seed=1, span=timedelta(days=30))
    same_ms = [
        events.one(100 + i, timedelta(days=2), eventName="PatchNode",
                   userIdentity={"type": "User", "username": "dave", "groups": []})
        for i in range(5)
    ]  # fmt: skip
    old = [
        events.one(200, timedelta(days=91), eventName="AncientCall"),
        events.one(201, timedelta(days=89), eventName="OldCall"),
    ]
    everything = base + same_ms + old
    return make_table(everything), everything


def _in_default_window(event: Event, now: datetime) -> bool:
    return _time(event) >= now - timedelta(days=90)


def _assert_newest_first(records: list[Event]) -> None:
    times = [_time(r) for r in records]
    assert times == sorted(times, reverse=True)


def _attribute_matches(key: str, value: str) -> Callable[[Event], bool]:
    return {
        "EventId": lambda e: e["eventID"] == value,
        "EventName": lambda e: e["eventName"] == value,
        "ReadOnly": lambda e: e["readOnly"] == (value == "true"),
        "Username": lambda e: e["userIdentity"]["username"] == value,
        "ResourceType": lambda e: any(r["type"] == value for r in e["resources"]),
        "ResourceName": lambda e: any(r["name"] == value for r in e["resources"]),
        "EventSource": lambda e: e["eventSource"] == value,
        "Namespace": lambda e: e["namespace"] == value,
    }[key]


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("EventId", None),
        ("EventName", "GetSecret"),
        ("ReadOnly", "true"),
        ("ReadOnly", "false"),
        ("Username", "alice"),
        ("ResourceType", "deployments"),
        ("ResourceName", "pods-1"),
        ("EventSource", "apps.k8s.io"),
        ("Namespace", "payments"),
    ],
)
def test_lookup_by_each_attribute_returns_the_matching_events_newest_first(
    query_store: Store, data: tuple[str, list[Event]], events: Any, key: str, value: str | None
) -> None:
    table, everything = data
    value = value or everything[7]["eventID"]
    expected = {
        e["eventID"]
        for e in everything
        if _attribute_matches(key, value)(e) and _in_default_window(e, events.now)
    }
    page = lookup(query_store, table, LookupRequest(key, value, max_results=1000))
    assert expected, "the data set should hold matching events"
    assert {r["eventID"] for r in page.records} == expected
    assert len(page.records) == len(expected)
    _assert_newest_first(page.records)
    assert page.next_token is None


def test_every_spec_attribute_key_is_supported() -> None:
    assert set(ATTRIBUTE_KEYS) == {
        "EventId", "EventName", "ReadOnly", "Username",
        "ResourceType", "ResourceName", "EventSource", "Namespace",
    }  # fmt: skip


def test_lookup_returns_records_in_the_spec_shape(
    query_store: Store, data: tuple[str, list[Event]]
) -> None:
    table, everything = data
    source = everything[3]
    (record,) = lookup(query_store, table, LookupRequest("EventId", source["eventID"])).records
    assert record == source


def test_lookup_without_attribute_returns_the_last_90_days(
    query_store: Store, data: tuple[str, list[Event]], events: Any
) -> None:
    table, everything = data
    page = lookup(query_store, table, LookupRequest(max_results=1000))
    names = {r["eventName"] for r in page.records}
    assert "OldCall" in names
    assert "AncientCall" not in names
    assert len(page.records) == sum(_in_default_window(e, events.now) for e in everything)


def test_time_window_is_inclusive_at_both_ends(
    query_store: Store, data: tuple[str, list[Event]]
) -> None:
    table, everything = data
    first, last = sorted(everything[:10], key=_time)[0], sorted(everything[:10], key=_time)[-1]
    request = LookupRequest(start_time=_time(first), end_time=_time(last), max_results=1000)
    ids = {r["eventID"] for r in lookup(query_store, table, request).records}
    assert {first["eventID"], last["eventID"]} <= ids
    inside = {e["eventID"] for e in everything if _time(first) <= _time(e) <= _time(last)}
    assert ids == inside


def test_naive_times_are_taken_as_utc(query_store: Store, data: tuple[str, list[Event]]) -> None:
    table, everything = data
    moment = _time(everything[0])
    request = LookupRequest(
        "EventId", everything[0]["eventID"],
        start_time=moment.replace(tzinfo=None), end_time=moment.replace(tzinfo=None),
    )  # fmt: skip
    assert len(lookup(query_store, table, request).records) == 1


def test_pagination_returns_each_event_once_in_order(
    query_store: Store, data: tuple[str, list[Event]]
) -> None:
    table, _ = data
    whole = lookup(query_store, table, LookupRequest(max_results=1000)).records
    seen: list[Event] = []
    token = None
    pages = 0
    while True:
        page = lookup(query_store, table, LookupRequest(max_results=7, next_token=token))
        pages += 1
        assert len(page.records) == 7 or page.next_token is None
        seen.extend(page.records)
        token = page.next_token
        if token is None:
            break
    assert [r["eventID"] for r in seen] == [r["eventID"] for r in whole]
    assert len({r["eventID"] for r in seen}) == len(seen)
    assert pages == -(-len(whole) // 7)


def test_events_of_the_same_millisecond_are_split_across_pages_without_loss(
    query_store: Store, data: tuple[str, list[Event]]
) -> None:
    table, everything = data
    tied = {e["eventID"] for e in everything if e["eventName"] == "PatchNode"}
    first = lookup(query_store, table, LookupRequest("Username", "dave", max_results=2))
    second = lookup(
        query_store, table,
        LookupRequest("Username", "dave", max_results=2, next_token=first.next_token),
    )  # fmt: skip
    third = lookup(
        query_store, table,
        LookupRequest("Username", "dave", max_results=2, next_token=second.next_token),
    )  # fmt: skip
    ids = [r["eventID"] for p in (first, second, third) for r in p.records]
    assert len(ids) == len(set(ids)) == 5
    assert set(ids) == tied
    assert third.next_token is None


def test_last_page_has_no_next_token(query_store: Store, data: tuple[str, list[Event]]) -> None:
    table, _ = data
    page = lookup(query_store, table, LookupRequest("Username", "dave", max_results=5))
    assert len(page.records) == 5
    assert page.next_token is None


@pytest.mark.parametrize(
    "changed",
    [
        {"attribute_value": "bob"},
        {"attribute_key": "EventName"},
        {"start_time": datetime(2020, 1, 1, tzinfo=UTC)},
        {"end_time": datetime(2030, 1, 1, tzinfo=UTC)},
    ],
    ids=["value", "key", "start_time", "end_time"],
)
def test_next_token_with_changed_parameters_is_refused(
    query_store: Store, data: tuple[str, list[Event]], changed: dict[str, Any]
) -> None:
    table, _ = data
    original: dict[str, Any] = {"attribute_key": "Username", "attribute_value": "alice"}
    first = lookup(query_store, table, LookupRequest(**original, max_results=3))
    assert first.next_token
    with pytest.raises(InvalidNextTokenError, match="different lookup parameters"):
        lookup(
            query_store, table,
            LookupRequest(**{**original, **changed}, max_results=3, next_token=first.next_token),
        )  # fmt: skip


def test_next_token_is_valid_with_another_page_size(
    query_store: Store, data: tuple[str, list[Event]]
) -> None:
    table, _ = data
    first = lookup(query_store, table, LookupRequest("Username", "alice", max_results=3))
    second = lookup(
        query_store, table,
        LookupRequest("Username", "alice", max_results=10, next_token=first.next_token),
    )  # fmt: skip
    assert len(second.records) == 10
    assert not {r["eventID"] for r in first.records} & {r["eventID"] for r in second.records}


def test_next_token_for_another_store_is_refused(
    query_store: Store, data: tuple[str, list[Event]], make_table: Callable[..., str], events: Any
) -> None:
    table, _ = data
    other = make_table(events.generate(10, seed=9))
    first = lookup(query_store, table, LookupRequest(max_results=2))
    with pytest.raises(InvalidNextTokenError):
        lookup(query_store, other, LookupRequest(max_results=2, next_token=first.next_token))


@pytest.mark.parametrize("token", ["garbage", "", "eyJ2IjoxfQ", "!!!", "e30"])
def test_malformed_next_token_is_refused(
    query_store: Store, data: tuple[str, list[Event]], token: str
) -> None:
    table, _ = data
    if token == "":
        # An empty token is "no token", as in the AWS CLI.
        assert lookup(query_store, table, LookupRequest(max_results=1, next_token=token)).records
        return
    with pytest.raises(InvalidNextTokenError, match="not one this lookup issued"):
        lookup(query_store, table, LookupRequest(max_results=1, next_token=token))


def test_retried_event_appears_once(
    query_store: Store, make_table: Callable[..., str], events: Any
) -> None:
    batch = events.generate(20, seed=5)
    retried = batch[4:9]
    table = make_table(batch, retried, retried, stop_merges=True)
    (copies,) = query_store.rows(
        f"SELECT count() FROM `trail`.`{table}` WHERE eventID = {{id:UUID}}",
        parameters={"id": retried[0]["eventID"]},
    )[0]
    assert copies == 3, "the copies must still be separate rows for this test to mean anything"

    page = lookup(query_store, table, LookupRequest(max_results=1000))
    ids = [r["eventID"] for r in page.records]
    assert len(ids) == len(set(ids)) == 20
    (one,) = lookup(query_store, table, LookupRequest("EventId", retried[0]["eventID"])).records
    assert one["eventID"] == retried[0]["eventID"]


def test_pages_stay_full_and_unique_when_copies_are_dropped(
    query_store: Store, make_table: Callable[..., str], events: Any
) -> None:
    batch = events.generate(30, seed=6)
    table = make_table(batch, batch, batch, stop_merges=True)
    ids: list[str] = []
    token = None
    while True:
        page = lookup(query_store, table, LookupRequest(max_results=4, next_token=token))
        assert len(page.records) == 4 or page.next_token is None
        ids.extend(r["eventID"] for r in page.records)
        token = page.next_token
        if not token:
            break
    assert len(ids) == len(set(ids)) == 30


def test_values_are_bound_not_spliced_into_sql(
    query_store: Store, data: tuple[str, list[Event]]
) -> None:
    table, _ = data
    for hostile in ("' OR 1=1 --", "alice'; DROP TABLE x; --", "{value:String}", "\\'"):
        assert lookup(query_store, table, LookupRequest("Username", hostile)).records == []


def test_unknown_attribute_key_lists_the_valid_ones(
    query_store: Store, data: tuple[str, list[Event]]
) -> None:
    table, _ = data
    with pytest.raises(InvalidLookupAttributeError) as raised:
        lookup(query_store, table, LookupRequest("AccessKeyId", "AKIA"))
    message = str(raised.value)
    assert "'AccessKeyId'" in message
    for key in ATTRIBUTE_KEYS:
        assert key in message


def test_attribute_keys_are_case_insensitive(
    query_store: Store, data: tuple[str, list[Event]]
) -> None:
    table, _ = data
    assert lookup(query_store, table, LookupRequest("username", "dave")).records


@pytest.mark.parametrize("value", ["yes", "1", "TRUEISH", ""])
def test_read_only_must_be_true_or_false(
    query_store: Store, data: tuple[str, list[Event]], value: str
) -> None:
    table, _ = data
    with pytest.raises(InvalidLookupAttributeError, match="ReadOnly"):
        lookup(query_store, table, LookupRequest("ReadOnly", value))


def test_read_only_accepts_any_case(query_store: Store, data: tuple[str, list[Event]]) -> None:
    table, _ = data
    page = lookup(query_store, table, LookupRequest("ReadOnly", "TRUE", max_results=5))
    assert page.records
    assert all(r["readOnly"] for r in page.records)


def test_event_id_must_be_a_uuid(query_store: Store, data: tuple[str, list[Event]]) -> None:
    table, _ = data
    with pytest.raises(InvalidLookupAttributeError, match=r"EventId must be an event ID.*'abc'"):
        lookup(query_store, table, LookupRequest("EventId", "abc"))


def test_value_without_key_is_refused(query_store: Store, data: tuple[str, list[Event]]) -> None:
    table, _ = data
    with pytest.raises(InvalidLookupAttributeError, match="without a key"):
        lookup(query_store, table, LookupRequest(attribute_value="alice"))


@pytest.mark.parametrize("max_results", [0, -1, 1001, True])
def test_max_results_out_of_range_is_refused(
    query_store: Store, data: tuple[str, list[Event]], max_results: int
) -> None:
    table, _ = data
    with pytest.raises(InvalidMaxResultsError, match="from 1 to 1000"):
        lookup(query_store, table, LookupRequest(max_results=max_results))


def test_max_results_default_is_50(query_store: Store, data: tuple[str, list[Event]]) -> None:
    table, _ = data
    page = lookup(query_store, table, LookupRequest())
    assert len(page.records) == 50
    assert page.next_token


def test_start_after_end_is_refused(query_store: Store, data: tuple[str, list[Event]]) -> None:
    table, _ = data
    with pytest.raises(InvalidTimeRangeError, match="is after end_time"):
        lookup(
            query_store, table,
            LookupRequest(start_time=datetime(2025, 2, 1, tzinfo=UTC),
                          end_time=datetime(2025, 1, 1, tzinfo=UTC)),
        )  # fmt: skip


def test_errors_share_one_base_class() -> None:
    for error in (
        InvalidLookupAttributeError,
        InvalidMaxResultsError,
        InvalidNextTokenError,
        InvalidTimeRangeError,
    ):
        assert issubclass(error, LookupRequestError)


def test_parse_lookup_attribute_splits_key_and_value() -> None:
    assert parse_lookup_attribute("Username=system:serviceaccount:a:b") == (
        "Username",
        "system:serviceaccount:a:b",
    )
    assert parse_lookup_attribute("resourcename=a=b") == ("ResourceName", "a=b")
    with pytest.raises(InvalidLookupAttributeError, match="KEY=VALUE"):
        parse_lookup_attribute("Username")


def test_parse_lookup_time_accepts_iso_and_epoch() -> None:
    expected = datetime(2024, 5, 1, 10, 0, tzinfo=UTC)
    assert parse_lookup_time("2024-05-01T10:00:00Z") == expected
    assert parse_lookup_time("2024-05-01T12:00:00+02:00") == expected
    assert parse_lookup_time(str(int(expected.timestamp()))) == expected
    assert parse_lookup_time("2024-05-01") == datetime(2024, 5, 1, tzinfo=UTC)
    with pytest.raises(LookupRequestError, match="ISO 8601"):
        parse_lookup_time("yesterday")


@pytest.mark.parametrize("text", ["1e20", "inf", "-1e300"])
def test_out_of_range_epoch_times_are_refused_with_a_lookup_error(text: str) -> None:
    with pytest.raises(LookupRequestError, match="out of range"):
        parse_lookup_time(text)
