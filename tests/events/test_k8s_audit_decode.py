"""The EventList fast path gives the reference normalizer's records (k8s_audit_decode.py)."""

from __future__ import annotations

import copy
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from events.audit_samples import (
    APPLY_SECRET,
    CREATE_DEPLOYMENT,
    CREATE_TOKEN_REVIEW,
    DELETE_DEPLOYMENT,
    IMPERSONATED_LIST_PODS,
    LIST_SECRETS_TABLE,
    SECRET_VALUES,
    WATCH_PODS,
    WATCH_PODS_STARTED,
    damaged_event,
    event_list,
    sample_events,
)
from trail_operator.events.k8s_audit import AuditEventNormalizer, AuditRejection
from trail_operator.events.k8s_audit_decode import ITEM_BY_ITEM_BYTES, decode_event_list
from trail_operator.events.record import Record, record_from_row
from trail_operator.store.rows import encode_row, encode_values

CLUSTER = "prod-eu"
REGION = "eu-west-1"


def rows(records: list[Record]) -> list[Any]:
    """Records as the store receives them (raw bodies and parsed ones compare equal)."""
    return [orjson.loads(encode_row(record)) for record in records]


class FastOnly(AuditEventNormalizer):
    """Fails a test whose events the fast path hands to the reference (slowly)."""

    def normalize_item(self, index: int, item: object) -> Record | AuditRejection | None:
        raise AssertionError(f"item {index} left the fast path")


def both_paths(items: list[Any], by_item: bool | None = None) -> tuple[
        tuple[int, list[Record], list[AuditRejection]] | None,
        tuple[list[Record], list[AuditRejection]]]:
    body = orjson.dumps(event_list(*items))
    decoded = decode_event_list(AuditEventNormalizer(CLUSTER, REGION), body, by_item)
    fast = None if decoded is None else (
        decoded[0], [record_from_row(row) for row in decoded[1]], decoded[2])
    reference = AuditEventNormalizer(CLUSTER, REGION).normalize_list(orjson.loads(body))
    return fast, reference


def assert_same(items: list[Any], by_item: bool | None = None) -> None:
    fast, (records, rejections) = both_paths(items, by_item)
    assert fast is not None, "a well-formed EventList must take the fast path"
    received, fast_records, fast_rejections = fast
    assert received == len(items)
    assert rows(fast_records) == rows(records)
    assert fast_rejections == rejections


@pytest.mark.parametrize("by_item", [False, True], ids=["whole", "by-item"])
def test_every_sample_gives_the_reference_record(by_item: bool) -> None:
    assert_same([*sample_events(), WATCH_PODS_STARTED], by_item)


def test_a_large_body_is_decoded_an_event_at_a_time_with_the_same_rows() -> None:
    items = [copy.deepcopy(event) for event in sample_events() * 200]
    body = orjson.dumps(event_list(*items))
    assert len(body) > ITEM_BY_ITEM_BYTES
    whole = decode_event_list(FastOnly(CLUSTER, REGION), body, by_item=False)
    default = decode_event_list(FastOnly(CLUSTER, REGION), body)
    assert whole is not None
    assert default is not None
    assert default[0] == whole[0] == len(items)
    assert rows([record_from_row(row) for row in default[1]]) == rows(
        [record_from_row(row) for row in whole[1]])


@pytest.mark.parametrize("sample", [APPLY_SECRET, LIST_SECRETS_TABLE, CREATE_TOKEN_REVIEW],
                         ids=["secret-apply", "secret-table", "token-review"])
def test_secret_values_are_redacted_on_the_fast_path_too(sample: dict[str, Any]) -> None:
    fast, _ = both_paths([copy.deepcopy(sample)])
    assert fast is not None
    text = b"\n".join(encode_row(record) for record in fast[1]).decode()
    assert not [value for value in SECRET_VALUES if value in text]
    assert_same([copy.deepcopy(sample)])


@pytest.mark.parametrize("body", [
    b'{"kind": "Secret", "data": {"password": "aHVudGVyMg=="}}',
    b'{"kind": "List", "items": [{"kind": "Secret", "stringData": {"token": "hunter2"}}]}',
    b'{"kind": "Pod", "kind": "Secret", "data": {"password": "aHVudGVyMg=="}}',
    b'{"kind": "Secret", "kind": "Pod", "data": {"password": "aHVudGVyMg=="}}',
    b'{"kind": ["Secret"], "data": {"password": "aHVudGVyMg=="}}',
    b'{"metadata": {"name": "Secret"}, "spec": {"note": "a List of Tokens"}}',
    b'["Secret", {"kind": "Secret", "data": {"password": "aHVudGVyMg=="}}]',
    b'"Secret"', b'null', b'{}', b'[]', b'12',
], ids=["secret", "list-of-secrets", "duplicate-kind-secret-last", "duplicate-kind-pod-last",
        "kind-not-a-string", "words-but-no-kind", "array", "string", "null", "empty-object",
        "empty-array", "number"])
def test_bodies_outside_secret_requests_are_redacted_as_the_reference_does(body: bytes) -> None:
    # The fast path reads only the top-level kind of such a body; the reference
    # parses it all. A ConfigMap request carries them: not a request to secrets.
    event = copy.deepcopy(CREATE_DEPLOYMENT)
    text = orjson.dumps(event_list(event)).replace(
        orjson.dumps(event["requestObject"]), body)
    assert body in text
    fast = decode_event_list(FastOnly(CLUSTER, REGION), text)
    reference = AuditEventNormalizer(CLUSTER, REGION).normalize_list(orjson.loads(text))
    assert fast is not None
    assert [orjson.loads(encode_values(row)) for row in fast[1]] == rows(reference[0])
    assert b"hunter2" not in b"".join(map(encode_values, fast[1]))


def test_impersonated_request_keeps_the_real_caller() -> None:
    fast, _ = both_paths([copy.deepcopy(IMPERSONATED_LIST_PODS)])
    assert fast is not None
    identity = fast[1][0]["userIdentity"]
    assert identity["impersonatedBy"]["username"] == IMPERSONATED_LIST_PODS["user"]["username"]
    assert_same([copy.deepcopy(IMPERSONATED_LIST_PODS)])


def test_impersonated_get_keeps_the_resource_uid() -> None:
    event = copy.deepcopy(IMPERSONATED_LIST_PODS)
    event["verb"] = "get"
    event["objectRef"].update(name="web-0", uid="pod-uid-1")
    event["impersonatedUser"]["uid"] = "bob-uid"
    fast, _ = both_paths([event])
    assert fast is not None
    assert fast[1][0]["resources"][0]["uid"] == "pod-uid-1"
    assert_same([event])


def test_create_without_a_name_in_the_object_ref_takes_it_from_the_body() -> None:
    event = copy.deepcopy(CREATE_DEPLOYMENT)
    event["objectRef"].pop("name", None)
    fast, _ = both_paths([event])
    assert fast is not None
    assert fast[1][0]["resources"][0]["name"] == CREATE_DEPLOYMENT["objectRef"]["name"]
    assert_same([event])


@pytest.mark.parametrize("annotations", [{}, None, {"a": "b"}])
def test_annotations_empty_missing_or_present_match(annotations: object) -> None:
    event = copy.deepcopy(DELETE_DEPLOYMENT)
    event["annotations"] = annotations
    assert_same([event])


@pytest.mark.parametrize("by_item", [False, True], ids=["whole", "by-item"])
def test_one_bad_item_is_rejected_by_the_reference_and_the_rest_kept(by_item: bool) -> None:
    bad = copy.deepcopy(WATCH_PODS)
    bad["verb"] = ""
    wrong_type = copy.deepcopy(CREATE_DEPLOYMENT)
    wrong_type["sourceIPs"] = "10.0.0.1"  # not a list: the whole body fails the structs
    items = [copy.deepcopy(WATCH_PODS), bad, copy.deepcopy(CREATE_DEPLOYMENT), wrong_type]
    fast, _ = both_paths(items, by_item=True)
    assert fast is not None
    assert [r.index for r in fast[2]] == [1, 3]
    assert fast[2][0].reason == "items[1].verb: missing"
    assert_same(items[:3], by_item)
    assert_same(items, by_item=True)


def test_shared_identities_are_equal_to_fresh_ones() -> None:
    # The normalizer shares one userIdentity per plain identity between records.
    normalizer = AuditEventNormalizer(CLUSTER, REGION)
    body = orjson.dumps(event_list(copy.deepcopy(WATCH_PODS), copy.deepcopy(WATCH_PODS)))
    decoded = decode_event_list(normalizer, body)
    assert decoded is not None
    first, second = map(record_from_row, decoded[1])
    assert first["userIdentity"] is second["userIdentity"]
    assert rows([first]) == rows(AuditEventNormalizer(CLUSTER, REGION).normalize_list(
        event_list(copy.deepcopy(WATCH_PODS)))[0])


def service_account_event(pod: str) -> dict[str, Any]:
    event = copy.deepcopy(WATCH_PODS)
    event["user"] = {
        "username": "system:serviceaccount:shop:checkout", "uid": "0b6f7c1e",
        "groups": ["system:serviceaccounts", "system:authenticated"],
        "extra": {"authentication.kubernetes.io/pod-name": [pod]},
    }
    return event


def test_events_of_one_user_share_its_identity_even_with_extra() -> None:
    normalizer = AuditEventNormalizer(CLUSTER, REGION)
    items = [service_account_event("checkout-1"), service_account_event("checkout-1"),
             service_account_event("checkout-2")]
    decoded = decode_event_list(normalizer, orjson.dumps(event_list(*items)))
    assert decoded is not None
    first, second, other_pod = (record_from_row(row)["userIdentity"] for row in decoded[1])
    assert first is second
    assert other_pod["extra"] == {"authentication.kubernetes.io/pod-name": ["checkout-2"]}
    assert_same(items)


def test_a_user_of_the_wrong_shape_sends_only_its_event_to_the_reference() -> None:
    bad = copy.deepcopy(WATCH_PODS)
    bad["user"] = {"username": "alice", "groups": "admins"}
    items = [copy.deepcopy(WATCH_PODS), bad, copy.deepcopy(CREATE_DEPLOYMENT)]
    fast, _ = both_paths(items)
    assert fast is not None
    assert [(r.index, r.reason) for r in fast[2]] == [
        (1, "items[1].user.groups: must be a list of strings, got string")]
    assert_same(items)


@settings(max_examples=400, deadline=None)
@given(data=st.data())
def test_damaged_events_get_the_same_records_and_rejections_either_way(
        data: st.DataObject) -> None:
    items = [damaged_event(data), copy.deepcopy(WATCH_PODS)]
    fast, (records, rejections) = both_paths(items, data.draw(st.booleans(), "by_item"))
    if fast is None:
        return  # the gateway then uses the reference itself
    assert rows(fast[1]) == rows(records)
    assert fast[2] == rejections
