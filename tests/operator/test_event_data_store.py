"""EventDataStore reconciliation against the real kube-apiserver and the real ClickHouse engine."""

from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest
from kubernetes import client as k8s

from trail_fixtures import ADMIN_NAMESPACE, Trail, create_namespace, unique_namespace
from trail_operator.config import API_GROUP, API_VERSION, EVENT_HISTORY_NAME
from trail_operator.sandbox.controlplane import free_port
from trail_operator.store.ddl import TableSpec
from trail_operator.store.naming import table_name_for
from trail_operator.store.tables import current_retention_days, expire_now, table_exists

pytestmark = pytest.mark.control_plane


def apply_eds(namespace: str, name: str, **spec: Any) -> dict[str, Any]:
    body = {
        "apiVersion": f"{API_GROUP}/{API_VERSION}",
        "kind": "EventDataStore",
        "metadata": {"name": name, "namespace": namespace},
        "spec": spec,
    }
    return dict(k8s.CustomObjectsApi().create_namespaced_custom_object(
        API_GROUP, API_VERSION, namespace, "eventdatastores", body))


def patch_spec(namespace: str, name: str, **spec: Any) -> None:
    k8s.CustomObjectsApi().patch_namespaced_custom_object(
        API_GROUP, API_VERSION, namespace, "eventdatastores", name, {"spec": spec})


def spec_for(trail: Trail, namespace: str, name: str, days: int) -> TableSpec:
    return TableSpec(trail.store.database, table_name_for(namespace, name), days)


def insert_events(trail: Trail, table: str, times: list[datetime]) -> None:
    rows = [
        orjson.dumps({
            "eventID": f"00000000-0000-4000-8000-{index:012d}",
            "eventTime": moment.strftime("%Y-%m-%dT%H:%M:%S.000Z"),
            "eventName": "GetSecret",
            "eventCategory": "Data",
            "namespace": "x",
        })
        for index, moment in enumerate(times)
    ]
    trail.store.insert_json_each_row(table, b"\n".join(rows))


def events_of(namespace: str, name: str) -> list[str]:
    listed = k8s.CoreV1Api().list_namespaced_event(
        namespace, field_selector=f"involvedObject.name={name}")
    return [f"{event.reason}: {event.message}" for event in listed.items]


def test_event_history_store_is_created_at_install_with_90_days(trail: Trail) -> None:
    obj = trail.wait_ready(ADMIN_NAMESPACE, EVENT_HISTORY_NAME)
    assert obj["spec"]["retentionDays"] == 90
    spec = spec_for(trail, ADMIN_NAMESPACE, EVENT_HISTORY_NAME, 90)
    assert current_retention_days(trail.store, spec) == 90
    assert obj["status"]["state"] == "Enabled"


def test_new_store_gets_its_table_with_the_ttl_asked_for(trail: Trail) -> None:
    ns = create_namespace(unique_namespace("create"))
    apply_eds(ns, "audit", retentionDays=30)
    obj = trail.wait_ready(ns, "audit")
    spec = spec_for(trail, ns, "audit", 30)
    assert table_exists(trail.store, spec.database, spec.table)
    assert current_retention_days(trail.store, spec) == 30
    status = obj["status"]
    assert status["table"] == f"{spec.database}.{spec.table}"
    assert status["state"] == "Enabled"
    assert status["observedGeneration"] == obj["metadata"]["generation"]
    assert status["eventCount"] == 0
    trail.wait_for("a Ready event", lambda: [e for e in events_of(ns, "audit")
                                             if e.startswith("Ready")])


def test_changing_retention_alters_the_ttl_in_place(trail: Trail) -> None:
    ns = create_namespace(unique_namespace("ttl"))
    apply_eds(ns, "audit", retentionDays=30)
    trail.wait_ready(ns, "audit")
    spec = spec_for(trail, ns, "audit", 30)
    insert_events(trail, spec.table, [datetime.now(UTC)])
    patch_spec(ns, "audit", retentionDays=400)
    trail.wait_for("TTL of 400 days",
                   lambda: current_retention_days(trail.store, spec) == 400)
    # Altered, not recreated: the row is still there.
    assert trail.store.rows(f"SELECT count() FROM trail.`{spec.table}`")[0][0] == 1
    trail.wait_for("observedGeneration caught up", lambda: trail.eds(ns, "audit")["status"]
                   .get("observedGeneration") == trail.eds(ns, "audit")["metadata"]["generation"])


def test_expired_events_are_dropped_by_ttl(trail: Trail) -> None:
    ns = create_namespace(unique_namespace("expiry"))
    apply_eds(ns, "audit", retentionDays=30)
    trail.wait_ready(ns, "audit")
    spec = spec_for(trail, ns, "audit", 30)
    now = datetime.now(UTC)
    insert_events(trail, spec.table, [now - timedelta(days=20), now - timedelta(days=1), now])
    patch_spec(ns, "audit", retentionDays=10)
    trail.wait_for("TTL of 10 days", lambda: current_retention_days(trail.store, spec) == 10)
    expire_now(trail.store, TableSpec(spec.database, spec.table, 10))
    left = trail.store.rows(f"SELECT eventTime FROM trail.`{spec.table}` ORDER BY eventTime")
    assert len(left) == 2
    assert all(moment.replace(tzinfo=UTC) > now - timedelta(days=10) for (moment,) in left)


def test_stopping_and_restarting_ingestion_changes_state(trail: Trail) -> None:
    ns = create_namespace(unique_namespace("ingest"))
    apply_eds(ns, "audit")
    trail.wait_ready(ns, "audit")
    patch_spec(ns, "audit", ingestionEnabled=False)
    trail.wait_for("StoppedIngestion", lambda: trail.eds(ns, "audit")["status"]["state"]
                   == "StoppedIngestion")
    patch_spec(ns, "audit", ingestionEnabled=True)
    trail.wait_for("Enabled", lambda: trail.eds(ns, "audit")["status"]["state"] == "Enabled")


def test_termination_protection_refuses_deletion_with_a_clear_message(
    trail: Trail, kubectl: Any,
) -> None:
    ns = create_namespace(unique_namespace("protect"))
    apply_eds(ns, "audit")
    trail.wait_ready(ns, "audit")
    refused = kubectl("delete", "eds", "audit", "-n", ns, check=False)
    assert refused.returncode != 0
    assert "terminationProtection" in refused.stderr
    assert trail.eds(ns, "audit")["metadata"]["name"] == "audit"


def _delete_when_unprotected(trail: Trail, ns: str, name: str) -> None:
    patch_spec(ns, name, terminationProtection=False)
    k8s.CustomObjectsApi().delete_namespaced_custom_object(
        API_GROUP, API_VERSION, ns, "eventdatastores", name)

    def gone() -> bool:
        try:
            trail.eds(ns, name)
        except k8s.ApiException as exc:
            return exc.status == 404
        return False

    trail.wait_for(f"{ns}/{name} deleted", gone)


def test_deletion_policy_retain_keeps_the_table(trail: Trail) -> None:
    ns = create_namespace(unique_namespace("retain"))
    apply_eds(ns, "audit", deletionPolicy="Retain")
    trail.wait_ready(ns, "audit")
    _delete_when_unprotected(trail, ns, "audit")
    spec = spec_for(trail, ns, "audit", 366)
    assert table_exists(trail.store, spec.database, spec.table)


def test_deletion_policy_delete_drops_the_table(trail: Trail) -> None:
    ns = create_namespace(unique_namespace("drop"))
    apply_eds(ns, "audit", deletionPolicy="Delete")
    trail.wait_ready(ns, "audit")
    spec = spec_for(trail, ns, "audit", 366)
    assert table_exists(trail.store, spec.database, spec.table)
    _delete_when_unprotected(trail, ns, "audit")
    assert not table_exists(trail.store, spec.database, spec.table)


def test_status_reports_event_count_size_and_time_range(trail: Trail) -> None:
    ns = create_namespace(unique_namespace("stats"))
    # Ingestion off: only the rows inserted here, not the namespace's own audit traffic.
    apply_eds(ns, "audit", ingestionEnabled=False)
    trail.wait_ready(ns, "audit")
    spec = spec_for(trail, ns, "audit", 366)
    first = datetime(2026, 11, 1, 10, 0, tzinfo=UTC)
    last = datetime.now(UTC).replace(microsecond=0)
    insert_events(trail, spec.table, [first, last])

    def counted() -> dict[str, Any] | None:
        status = trail.eds(ns, "audit")["status"]
        return status if status.get("eventCount") == 2 else None

    status = trail.wait_for("eventCount 2", counted, timeout=20)
    assert status["bytesOnDisk"] > 0
    assert status["oldestEventTime"] == "2026-11-01T10:00:00.000Z"
    assert status["newestEventTime"] == last.strftime("%Y-%m-%dT%H:%M:%S.000Z")


def test_unreachable_store_is_reported_and_recovers_when_it_comes_back(trail: Trail) -> None:
    ns = create_namespace(unique_namespace("unreachable"))
    closed_port = free_port()
    secret = k8s.V1Secret(
        metadata=k8s.V1ObjectMeta(name="clickhouse", namespace=ns),
        data={"dsn": base64.b64encode(f"http://127.0.0.1:{closed_port}".encode()).decode()},
    )
    k8s.CoreV1Api().create_namespaced_secret(ns, secret)
    apply_eds(ns, "remote", clickhouse={"secretRef": {"name": "clickhouse"}})

    def unreachable() -> dict[str, Any] | None:
        for condition in (trail.eds(ns, "remote").get("status") or {}).get("conditions") or []:
            if condition["type"] == "Ready" and condition["reason"] == "StoreUnreachable":
                return dict(condition)
        return None

    condition = trail.wait_for("Ready=False StoreUnreachable", unreachable, timeout=60)
    assert condition["status"] == "False"
    assert str(closed_port) in condition["message"]
    trail.wait_for("a StoreUnreachable event", lambda: [
        e for e in events_of(ns, "remote") if e.startswith("StoreUnreachable")])
    # The store comes back: the Secret now names a reachable ClickHouse.
    k8s.CoreV1Api().patch_namespaced_secret("clickhouse", ns, {"data": {
        "dsn": base64.b64encode(trail.store.dsn.encode()).decode()}})
    trail.wait_ready(ns, "remote", timeout=60)
    spec = spec_for(trail, ns, "remote", 366)
    assert table_exists(trail.store, spec.database, spec.table)


def test_names_that_are_not_sql_identifiers_get_distinct_safe_tables(trail: Trail) -> None:
    first = create_namespace(unique_namespace("a-b"))
    second = f"{first}-c"
    create_namespace(second)
    # `<first>/c-x` and `<first>-c/x` would collide if only punctuation were mapped.
    apply_eds(first, "c-x")
    apply_eds(second, "x")
    one = trail.wait_ready(first, "c-x")["status"]["table"]
    two = trail.wait_ready(second, "x")["status"]["table"]
    assert one != two
    for table in (one, two):
        database, name = table.split(".")
        assert table_exists(trail.store, database, name)
