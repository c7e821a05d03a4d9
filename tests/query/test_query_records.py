"""Rows read back from an event table are the records that were written."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

from trail_operator.query.records import (
    RECORD_COLUMNS,
    RECORD_SELECT_LIST,
    records_from_json_each_row,
    row_to_record,
)
from trail_operator.store.client import Store


def read_back(store: Store, table: str) -> list[dict[str, Any]]:
    data = store.raw(f"SELECT {RECORD_SELECT_LIST} FROM `trail`.`{table}` ORDER BY eventTime")
    return list(records_from_json_each_row(data))


def test_records_round_trip_through_the_table(
    query_store: Store, make_table: Callable[..., str], events: Any
) -> None:
    written = sorted(events.generate(25, seed=21), key=lambda e: e["eventTime"])
    assert read_back(query_store, make_table(written)) == written


def test_a_full_cloudtrail_record_keeps_its_nested_objects_and_extra_fields(
    query_store: Store, make_table: Callable[..., str], events: Any
) -> None:
    record = events.one(
        22,
        timedelta(hours=1),
        userIdentity={
            "type": "User",
            "username": "alice",
            "groups": ["dev", ""],
            "extra": {"scopes": ["read", "write"]},
            "impersonatedBy": {"username": "admin", "groups": ["system:masters"]},
            "sessionContext": {"attributes": {"mfaAuthenticated": "true"}},
        },
        requestParameters={"spec": {"replicas": 3, "paused": False, "labels": None}},
        responseElements=None,
        additionalEventData={"note": "x", "list": [1, "two"]},
        errorCode="Forbidden",
        extraFields={"tlsDetails": {"tlsVersion": "TLSv1.3"}, "sharedEventID": "abc"},
    )
    (back,) = read_back(query_store, make_table([record]))
    expected = {k: v for k, v in record.items() if k not in ("extraFields", "responseElements")}
    expected.update(record["extraFields"])
    assert back == expected


def test_ingest_time_and_the_extra_fields_column_never_leave_the_store(
    query_store: Store, make_table: Callable[..., str], events: Any
) -> None:
    (back,) = read_back(query_store, make_table([events.one(23, timedelta(minutes=5))]))
    assert "ingestTime" not in back
    assert "extraFields" not in back
    assert "ingestTime" not in RECORD_COLUMNS


def test_empty_column_values_are_dropped_and_booleans_kept() -> None:
    row = {
        "eventID": "6f1c3a52-5e0b-4c38-9a55-1b7f0c2d9e41",
        "eventTime": "2025-05-01T10:00:00.123Z",
        "eventName": "GetSecret",
        "errorCode": "",
        "readOnly": False,
        "managementEvent": False,
        "userIdentity": {
            "type": "User", "username": "alice", "uid": "", "groups": [], "extra": {},
            "impersonatedBy": {"username": "", "uid": "", "groups": []},
        },
        "resources": [{"type": "secrets", "name": "db", "namespace": ""}],
        "requestParameters": "",
        "responseElements": "",
        "extraFields": "",
        "ingestTime": "2025-05-01T10:00:01.000Z",
    }  # fmt: skip
    assert row_to_record(row) == {
        "eventID": "6f1c3a52-5e0b-4c38-9a55-1b7f0c2d9e41",
        "eventTime": "2025-05-01T10:00:00.123Z",
        "eventName": "GetSecret",
        "readOnly": False,
        "managementEvent": False,
        "userIdentity": {"type": "User", "username": "alice"},
        "resources": [{"type": "secrets", "name": "db"}],
    }


def test_json_text_that_is_not_json_stays_a_string() -> None:
    record = row_to_record({"requestParameters": "not json", "additionalEventData": "[1,2]"})
    assert record == {"requestParameters": "not json", "additionalEventData": [1, 2]}


def test_extra_fields_never_replace_a_column() -> None:
    record = row_to_record({"eventName": "GetSecret", "extraFields": '{"eventName": "Other"}'})
    assert record == {"eventName": "GetSecret"}
