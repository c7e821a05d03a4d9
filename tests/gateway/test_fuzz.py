"""Fuzzing both ingest endpoints: no input crashes the gateway or costs good data."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from typing import Any

import orjson
import pytest
import requests
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateway.gateway_harness import RunningGateway, running_gateway
from trail_operator.gateway.channels import Channel
from trail_operator.store.catalog import StoreEntry, ensure_catalog
from trail_operator.store.client import Store
from trail_operator.store.ddl import TableSpec
from trail_operator.store.naming import table_name_for
from trail_operator.store.tables import ensure_table

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(min_value=-(2**63), max_value=2**64 - 1)
    | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4)
    | st.dictionaries(st.text(max_size=12), children, max_size=4),
    max_leaves=20,
)
AUDIT_KEYS = ["auditID", "stage", "verb", "requestURI", "user", "impersonatedUser", "objectRef",
              "responseStatus", "requestReceivedTimestamp", "stageTimestamp", "sourceIPs",
              "requestObject", "responseObject", "level", "userAgent", "annotations"]
audit_items = st.dictionaries(st.sampled_from(AUDIT_KEYS), json_values, max_size=len(AUDIT_KEYS))


@pytest.fixture(scope="module")
def fuzz_gateway(store: Store) -> Iterator[tuple[RunningGateway, str]]:
    table = table_name_for("fuzz", "all")
    ensure_catalog(store)
    ensure_table(store, TableSpec(store.database, table, 30))
    entry = StoreEntry(uid="fuzz", namespace="fuzz", name="all", table=table, retention_days=30,
                       all_namespaces=True, selectors=[{"fieldSelectors": [
                           {"field": "eventCategory", "equals": ["Management", "Data",
                                                                "ActivityAuditLog"]}]}])
    channel = Channel("fuzz", "app", "fuzz-token", ("all",))
    with running_gateway(store, [entry], channels={"fuzz/app": channel},
                         batch_linger=0.01) as gw:
        yield gw, table


def good_item() -> dict[str, Any]:
    now = time.strftime("%Y-%m-%dT%H:%M:%S.000000Z", time.gmtime())
    return {"auditID": str(uuid.uuid4()), "stage": "ResponseComplete", "verb": "list",
            "requestURI": "/api/v1/pods", "level": "Metadata", "user": {"username": "fuzz"},
            "objectRef": {"resource": "pods", "apiVersion": "v1"},
            "responseStatus": {"code": 200}, "requestReceivedTimestamp": now,
            "stageTimestamp": now}


@settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
@given(items=st.lists(audit_items | json_values, max_size=5),
       kind=st.sampled_from(["EventList", "Event", None, 3]))
def test_audit_webhook_survives_any_item_and_keeps_the_good_one(
    fuzz_gateway: tuple[RunningGateway, str], store: Store, items: list[Any], kind: Any,
) -> None:
    gw, table = fuzz_gateway
    good = good_item()
    body = {"kind": kind, "apiVersion": "audit.k8s.io/v1", "items": [*items, good]}
    answer = requests.post(f"{gw.url}/k8s-audit", data=orjson.dumps(body), headers=gw.headers)
    assert answer.status_code < 500, answer.text
    assert "message" in answer.json() or "accepted" in answer.json()
    if kind == "EventList":
        stored = store.rows(f"SELECT count() FROM trail.`{table}` WHERE requestID = {{i:String}}",
                            parameters={"i": good["auditID"]})[0][0]
        assert stored == 1


@settings(max_examples=100, deadline=None, suppress_health_check=list(HealthCheck))
@given(raw=st.binary(max_size=300))
def test_audit_webhook_survives_arbitrary_bytes(
    fuzz_gateway: tuple[RunningGateway, str], raw: bytes,
) -> None:
    gw, _ = fuzz_gateway
    answer = requests.post(f"{gw.url}/k8s-audit", data=raw, headers=gw.headers)
    assert 200 <= answer.status_code < 500


@settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
@given(events=st.lists(st.dictionaries(
    st.sampled_from(["id", "eventData", "eventDataChecksum", "other"]),
    json_values | st.text(max_size=50), max_size=4), max_size=6) | json_values)
def test_put_audit_events_survives_any_call(
    fuzz_gateway: tuple[RunningGateway, str], events: Any,
) -> None:
    gw, _ = fuzz_gateway
    answer = requests.post(f"{gw.url}/PutAuditEvents", params={"channel": "fuzz/app"},
                           data=orjson.dumps({"auditEvents": events}),
                           headers={"Authorization": "Bearer fuzz-token"})
    assert answer.status_code < 500, answer.text
    result = answer.json()
    if answer.status_code == 200:
        assert len(result["successful"]) + len(result["failed"]) == len(events)
    else:
        assert result["message"]


EVENT_DATA_KEYS = ["version", "eventName", "eventSource", "eventTime", "UID", "userIdentity",
                   "sourceIPAddress", "userAgent", "errorCode", "errorMessage", "readOnly",
                   "requestParameters", "responseElements", "additionalEventData", "resources"]
event_data = st.dictionaries(st.sampled_from(EVENT_DATA_KEYS), json_values | st.datetimes().map(
    lambda moment: moment.isoformat()), min_size=3, max_size=len(EVENT_DATA_KEYS))


@settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
@given(data=event_data)
def test_put_audit_events_with_any_event_data_keeps_the_good_event(
    fuzz_gateway: tuple[RunningGateway, str], store: Store, data: dict[str, Any],
) -> None:
    gw, table = fuzz_gateway
    good_id = str(uuid.uuid4())
    good = {"eventName": "Login", "eventTime": "2026-11-26T10:00:00Z",
            "userIdentity": {"type": "User", "principalId": "fuzz"}}
    events = [{"id": "any", "eventData": orjson.dumps(data).decode()},
              {"id": good_id, "eventData": orjson.dumps(good).decode()}]
    answer = requests.post(f"{gw.url}/PutAuditEvents", params={"channel": "fuzz/app"},
                           data=orjson.dumps({"auditEvents": events}),
                           headers={"Authorization": "Bearer fuzz-token"})
    assert answer.status_code == 200, answer.text
    result = answer.json()
    assert len(result["successful"]) + len(result["failed"]) == 2
    (stored_id,) = [s["eventID"] for s in result["successful"] if s["id"] == good_id]
    stored = store.rows(f"SELECT count() FROM trail.`{table}` WHERE eventID = {{i:UUID}}",
                        parameters={"i": stored_id})[0][0]
    assert stored == 1
