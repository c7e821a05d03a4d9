"""PutAuditEvents entries: a value of the wrong type fails its own event, never the batch."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from trail_operator.events.put_audit import ActivityEventNormalizer


def _entry(event_id: str, **fields: Any) -> dict[str, str]:
    data = {"eventName": "Login", "eventTime": "2026-11-26T10:00:00Z",
            "userIdentity": {"type": "User", "principalId": "carol"}, **fields}
    return {"id": event_id, "eventData": orjson.dumps(data).decode()}


def _normalizer() -> ActivityEventNormalizer:
    return ActivityEventNormalizer("test", "region-1", "shop", "shop/app", default_source="shop")


@pytest.mark.parametrize(("fields", "message"), [
    ({"eventTime": "yesterday"}, "eventData.eventTime: not an RFC 3339 time: 'yesterday'"),
    ({"eventTime": "2026-13-45T99:00:00Z"}, "eventData.eventTime: not an RFC 3339 time"),
    ({"eventTime": 1764151200}, "eventData.eventTime: must be an RFC 3339 time string"),
    ({"eventName": {"a": 1}}, "eventData.eventName: must be a string, not an object"),
    ({"errorCode": 403}, "eventData.errorCode: must be a string, not a number"),
    ({"requestParameters": "x=1"}, "eventData.requestParameters: must be a JSON object"),
    ({"additionalEventData": [1]}, "eventData.additionalEventData: must be a JSON object"),
    ({"readOnly": "false"}, "eventData.readOnly: must be true or false, not a string"),
    ({"resources": "pods"}, "eventData.resources: must be a list of JSON objects"),
    ({"userIdentity": {"type": "User", "principalId": [1]}},
     "eventData.userIdentity.principalId: must be a string, not a list"),
])
def test_an_event_with_a_value_the_store_cannot_hold_fails_alone_naming_the_field(
        fields: dict[str, Any], message: str) -> None:
    accepted, failed = _normalizer().normalize([_entry("good"), _entry("bad", **fields)])
    assert [event.id for event in accepted] == ["good"]
    (failure,) = failed
    assert failure.id == "bad"
    assert failure.error_code == "InvalidData"
    assert failure.error_message.startswith("auditEvents[1].")
    assert message in failure.error_message


def test_event_times_are_stored_in_cloudtrails_utc_millisecond_form() -> None:
    accepted, failed = _normalizer().normalize([
        _entry("z", eventTime="2026-11-26T10:00:00Z"),
        _entry("offset", eventTime="2026-11-26T10:00:00.1234+05:00"),
    ])
    assert not failed
    assert [event.record["eventTime"] for event in accepted] == [
        "2026-11-26T10:00:00.000Z", "2026-11-26T05:00:00.123Z"]


def test_read_only_is_true_only_when_the_sender_says_true() -> None:
    accepted, _ = _normalizer().normalize([
        _entry("yes", readOnly=True), _entry("no", readOnly=False), _entry("unsaid")])
    assert [event.record["readOnly"] for event in accepted] == [True, False, False]


def test_a_null_identity_field_is_stored_empty_not_as_the_word_none() -> None:
    accepted, failed = _normalizer().normalize([
        _entry("null", userIdentity={"type": None, "principalId": None})])
    assert not failed
    identity = accepted[0].record["userIdentity"]
    assert (identity["type"], identity["principalId"], identity["username"]) == ("", "", "")
