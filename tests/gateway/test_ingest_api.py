"""The gateway's ingest endpoints: auth, bad input, retries, routing and metrics.

Against the running gateway of the `trail` fixture over HTTPS, with the same
client certificate the apiserver uses.
"""

from __future__ import annotations

import base64
import copy
import hashlib
import time
import uuid
from collections.abc import Iterator
from typing import Any

import orjson
import pytest
import requests
from kubernetes import client as k8s

from trail_fixtures import Trail, create_namespace, unique_namespace
from trail_operator.config import API_GROUP, API_VERSION
from trail_operator.store.naming import table_name_for

pytestmark = pytest.mark.control_plane


def audit_event(namespace: str, verb: str = "create", resource: str = "configmaps",
                name: str = "cm", audit_id: str | None = None) -> dict[str, Any]:
    now = time.strftime("%Y-%m-%dT%H:%M:%S.000000Z", time.gmtime())
    return {
        "kind": "Event", "apiVersion": "audit.k8s.io/v1", "level": "Metadata",
        "auditID": audit_id or str(uuid.uuid4()), "stage": "ResponseComplete",
        "requestURI": f"/api/v1/namespaces/{namespace}/{resource}", "verb": verb,
        "user": {"username": "bob", "uid": "u-1", "groups": ["system:authenticated"]},
        "sourceIPs": ["10.1.2.3"], "userAgent": "kubectl/v1.32.4",
        "objectRef": {"resource": resource, "namespace": namespace, "name": name,
                      "apiVersion": "v1"},
        "responseStatus": {"metadata": {}, "code": 201},
        "requestReceivedTimestamp": now, "stageTimestamp": now,
    }


def event_list(*items: dict[str, Any]) -> dict[str, Any]:
    return {"kind": "EventList", "apiVersion": "audit.k8s.io/v1", "items": list(items)}


@pytest.fixture(scope="module")
def https(trail: Trail) -> Iterator[requests.Session]:
    session = requests.Session()
    # Otherwise REQUESTS_CA_BUNDLE in the environment overrides the session's CA.
    session.trust_env = False
    session.verify = str(trail.plane.pki.ca_cert)
    session.cert = (str(trail.plane.pki.apiserver_client_cert),
                    str(trail.plane.pki.apiserver_client_key))
    yield session
    session.close()


@pytest.fixture(scope="module")
def tenant(trail: Trail) -> tuple[str, str]:
    """A namespace with a store of every category, and its table."""
    ns = create_namespace(unique_namespace("ingest-api"))
    body = {
        "apiVersion": f"{API_GROUP}/{API_VERSION}", "kind": "EventDataStore",
        "metadata": {"name": "all", "namespace": ns},
        "spec": {"advancedEventSelectors": [{"name": "all", "fieldSelectors": [
            {"field": "eventCategory", "equals": ["Management", "Data", "ActivityAuditLog"]}]}]},
    }
    k8s.CustomObjectsApi().create_namespaced_custom_object(
        API_GROUP, API_VERSION, ns, "eventdatastores", body)
    trail.wait_ready(ns, "all")
    time.sleep(2.5)  # routes are reloaded from the catalog every second
    return ns, table_name_for(ns, "all")


def count(trail: Trail, table: str, where: str = "1", **params: Any) -> int:
    trail.wait_stored()
    return int(trail.store.rows(
        f"SELECT count() FROM trail.`{table}` FINAL WHERE {where}", parameters=params)[0][0])


def test_acknowledged_audit_batch_is_stored(
    trail: Trail, https: requests.Session, tenant: tuple[str, str],
) -> None:
    ns, table = tenant
    event = audit_event(ns, name="acked")
    answer = https.post(f"{trail.gateway_url}/k8s-audit", json=event_list(event))
    assert answer.status_code == 200, answer.text
    assert answer.json()["accepted"] == 1
    assert count(trail, table, "requestID = {id:String}", id=event["auditID"]) == 1


def test_a_retried_batch_never_doubles_events(
    trail: Trail, https: requests.Session, tenant: tuple[str, str],
) -> None:
    ns, table = tenant
    batch = event_list(*(audit_event(ns, name=f"retry-{i}") for i in range(5)))
    for _ in range(3):
        assert https.post(f"{trail.gateway_url}/k8s-audit", json=batch).status_code == 200
    ids = [item["auditID"] for item in batch["items"]]
    trail.wait_stored()
    rows = trail.store.rows(
        f"SELECT count() FROM trail.`{table}` WHERE has({{ids:Array(String)}}, requestID)",
        parameters={"ids": ids})
    assert rows[0][0] == 5


def test_a_call_mixing_stored_and_new_events_stores_only_the_new_ones(
    trail: Trail, https: requests.Session, tenant: tuple[str, str],
) -> None:
    ns, table = tenant
    stored = [audit_event(ns, name=f"seen-{i}") for i in range(2)]
    fresh = [audit_event(ns, name=f"fresh-{i}") for i in range(2)]

    def dropped() -> float:
        metrics = https.get(f"{trail.gateway_url}/metrics").text
        line = next(line for line in metrics.splitlines()
                    if line.startswith("trail_gateway_duplicates_dropped_total "))
        return float(line.split()[1])

    assert https.post(f"{trail.gateway_url}/k8s-audit",
                      json=event_list(*stored)).status_code == 200
    before = dropped()
    answer = https.post(f"{trail.gateway_url}/k8s-audit", json=event_list(*stored, *fresh))
    assert answer.status_code == 200, answer.text
    assert dropped() - before == 2
    trail.wait_stored()
    ids = [item["auditID"] for item in stored + fresh]
    rows = trail.store.rows(
        f"SELECT count() FROM trail.`{table}` WHERE has({{ids:Array(String)}}, requestID)",
        parameters={"ids": ids})
    assert rows[0][0] == 4


def test_bad_items_are_named_and_good_items_in_the_same_call_are_kept(
    trail: Trail, https: requests.Session, tenant: tuple[str, str],
) -> None:
    ns, table = tenant
    good = audit_event(ns, name="good-one")
    bad = audit_event(ns, name="bad-one")
    del bad["verb"]
    answer = https.post(f"{trail.gateway_url}/k8s-audit", json=event_list(bad, good))
    assert answer.status_code == 400
    rejected = answer.json()["rejected"]
    assert len(rejected) == 1
    assert rejected[0]["index"] == 0
    assert "verb" in rejected[0]["reason"]
    assert count(trail, table, "requestID = {id:String}", id=good["auditID"]) == 1


@pytest.mark.parametrize(
    ("body", "status", "needle"),
    [
        (b"{not json", 400, "not valid JSON"),
        (orjson.dumps({"kind": "PodList", "apiVersion": "v1", "items": []}), 400, "EventList"),
        (orjson.dumps([1, 2, 3]), 400, "EventList"),
    ],
)
def test_malformed_audit_payloads_get_a_4xx_naming_the_problem(
    trail: Trail, https: requests.Session, body: bytes, status: int, needle: str,
) -> None:
    answer = https.post(f"{trail.gateway_url}/k8s-audit", data=body,
                        headers={"Content-Type": "application/json"})
    assert answer.status_code == status
    assert needle in answer.json()["message"]


def test_oversized_audit_body_is_refused_with_413(trail: Trail, https: requests.Session) -> None:
    answer = https.post(f"{trail.gateway_url}/k8s-audit", data=b" " * (65 * 1024 * 1024))
    assert answer.status_code == 413


def test_audit_webhook_refuses_callers_without_the_apiserver_certificate(
    trail: Trail, tenant: tuple[str, str],
) -> None:
    ns, table = tenant
    event = audit_event(ns, name="intruder")
    answer = requests.post(f"{trail.gateway_url}/k8s-audit", json=event_list(event),
                           verify=str(trail.plane.pki.ca_cert))
    assert answer.status_code == 401
    assert count(trail, table, "requestID = {id:String}", id=event["auditID"]) == 0


def test_records_reach_only_stores_whose_scope_and_selectors_match(
    trail: Trail, https: requests.Session, tenant: tuple[str, str],
) -> None:
    ns, table = tenant
    other_ns = create_namespace(unique_namespace("other"))
    mine, theirs = audit_event(ns, name="mine"), audit_event(other_ns, name="theirs")
    assert https.post(f"{trail.gateway_url}/k8s-audit",
                      json=event_list(mine, theirs)).status_code == 200
    assert count(trail, table, "requestID = {id:String}", id=mine["auditID"]) == 1
    assert count(trail, table, "requestID = {id:String}", id=theirs["auditID"]) == 0


# -- PutAuditEvents ------------------------------------------------------------

TOKEN = "push-token-for-tests"


@pytest.fixture(scope="module")
def channel(trail: Trail, tenant: tuple[str, str]) -> str:
    ns, _ = tenant
    k8s.CoreV1Api().create_namespaced_secret(ns, k8s.V1Secret(
        metadata=k8s.V1ObjectMeta(name="app-token"),
        data={"token": base64.b64encode(TOKEN.encode()).decode()}))
    k8s.CustomObjectsApi().create_namespaced_custom_object(
        API_GROUP, API_VERSION, ns, "integrations", {
            "apiVersion": f"{API_GROUP}/{API_VERSION}", "kind": "Integration",
            "metadata": {"name": "app", "namespace": ns},
            "spec": {"type": "push", "destinations": ["all"]},
        })
    return f"{ns}/app"


def put_event(event_id: str, name: str = "Login", checksum: bool = True,
              event_time: str | None = None) -> dict[str, str]:
    data = orjson.dumps({
        "version": "1.0", "eventName": name, "eventSource": "shop.example",
        "eventTime": event_time or time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "userIdentity": {"type": "User", "principalId": "carol", "details": {"username": "carol"}},
        "UID": event_id,
    }).decode()
    entry = {"id": event_id, "eventData": data}
    if checksum:
        entry["eventDataChecksum"] = hashlib.sha256(data.encode()).hexdigest()
    return entry


def put(trail: Trail, channel: str, events: list[dict[str, Any]], token: str = TOKEN,
        ) -> requests.Response:
    return requests.post(f"{trail.gateway_url}/PutAuditEvents", params={"channel": channel},
                         json={"auditEvents": events}, verify=str(trail.plane.pki.ca_cert),
                         headers={"Authorization": f"Bearer {token}"})


def test_put_audit_events_stores_good_events_and_fails_bad_ones_one_by_one(
    trail: Trail, channel: str, tenant: tuple[str, str],
) -> None:
    _, table = tenant
    bad_checksum = put_event("e-bad")
    bad_checksum["eventDataChecksum"] = "0" * 64
    # An eventTime the store cannot read would fail the whole insert behind it.
    bad_time = put_event("e-time", event_time="yesterday")
    answer = put(trail, channel, [put_event("e-1"), bad_checksum, {"id": "e-3"}, bad_time])
    assert answer.status_code == 200, answer.text
    result = answer.json()
    assert [s["id"] for s in result["successful"]] == ["e-1"]
    assert {(f["id"], f["errorCode"]) for f in result["failed"]} == {
        ("e-bad", "InvalidChecksum"), ("e-3", "FieldNotFound"), ("e-time", "InvalidData")}
    stored = result["successful"][0]["eventID"]
    assert count(trail, table, "eventID = {id:UUID} AND eventCategory = 'ActivityAuditLog'",
                 id=stored) == 1


def test_put_audit_events_retry_is_deduplicated_on_the_source_id(
    trail: Trail, channel: str, tenant: tuple[str, str],
) -> None:
    _, table = tenant
    first = put(trail, channel, [put_event("dup-1")]).json()
    second = put(trail, channel, [put_event("dup-1")]).json()
    assert first["successful"][0]["eventID"] == second["successful"][0]["eventID"]
    assert count(trail, table, "eventID = {id:UUID}", id=first["successful"][0]["eventID"]) == 1


def test_put_audit_events_call_level_errors_refuse_the_whole_call(
    trail: Trail, channel: str,
) -> None:
    too_many = put(trail, channel, [put_event(f"m-{i}") for i in range(101)])
    assert too_many.status_code == 400
    assert "at most 100" in too_many.json()["message"]
    assert put(trail, channel, [put_event("t-1")], token="wrong").status_code == 401
    unknown = put(trail, channel.split("/")[0] + "/nope", [put_event("u-1")])
    assert unknown.status_code == 404
    assert "no Integration" in unknown.json()["message"]
    assert put(trail, "no-slash", [put_event("u-2")]).status_code == 400


def test_metrics_count_received_accepted_and_rejected_events(
    trail: Trail, https: requests.Session,
) -> None:
    text = https.get(f"{trail.gateway_url}/metrics").text
    for series in ("trail_gateway_events_received_total", "trail_gateway_events_accepted_total",
                   "trail_gateway_events_rejected_total", "trail_gateway_rows_inserted_total",
                   "trail_gateway_batch_latency_seconds_bucket", "trail_gateway_queue_rows"):
        assert series in text
    assert https.get(f"{trail.gateway_url}/readyz").status_code == 200


def test_gateway_keeps_serving_after_every_bad_call(
    trail: Trail, https: requests.Session, tenant: tuple[str, str],
) -> None:
    ns, table = tenant
    event = audit_event(ns, name="after-bad-calls")
    broken = copy.deepcopy(event)
    broken["requestReceivedTimestamp"] = "yesterday-ish"
    https.post(f"{trail.gateway_url}/k8s-audit", json=event_list(broken))
    assert https.post(f"{trail.gateway_url}/k8s-audit",
                      json=event_list(event)).status_code == 200
    assert count(trail, table, "requestID = {id:String}", id=event["auditID"]) == 1
