"""The real kube-apiserver's audit webhook, through the gateway, into the stores."""

from __future__ import annotations

import time
from typing import Any

import pytest
from kubernetes import client as k8s

from trail_fixtures import ADMIN_NAMESPACE, Trail, create_namespace, unique_namespace
from trail_operator.config import API_GROUP, API_VERSION, EVENT_HISTORY_NAME
from trail_operator.store.naming import table_name_for

pytestmark = pytest.mark.control_plane

RECORD_QUERY = (
    "SELECT eventName, eventCategory, readOnly, userIdentity.username,"
    " userIdentity.impersonatedBy.username, errorCode, resources.type, resources.name,"
    " eventSource, recipientAccountId FROM trail.`{table}`"
    " WHERE namespace = {{ns:String}} ORDER BY eventTime"
)


def records(trail: Trail, table: str, ns: str) -> list[dict[str, Any]]:
    keys = ("eventName", "eventCategory", "readOnly", "username", "impersonatedBy",
            "errorCode", "resourceTypes", "resourceNames", "eventSource", "account")
    rows = trail.store.rows(RECORD_QUERY.format(table=table), parameters={"ns": ns})
    return [dict(zip(keys, row, strict=True)) for row in rows]


@pytest.fixture(scope="module")
def everything_store(trail: Trail) -> str:
    """An admin-namespace store of all categories: Event history keeps management events only."""
    body = {
        "apiVersion": f"{API_GROUP}/{API_VERSION}",
        "kind": "EventDataStore",
        "metadata": {"name": "all-events", "namespace": ADMIN_NAMESPACE},
        "spec": {"advancedEventSelectors": [{"name": "everything", "fieldSelectors": [
            {"field": "eventCategory", "equals": ["Management", "Data"]}]}]},
    }
    k8s.CustomObjectsApi().create_namespaced_custom_object(
        API_GROUP, API_VERSION, ADMIN_NAMESPACE, "eventdatastores", body)
    trail.wait_ready(ADMIN_NAMESPACE, "all-events")
    time.sleep(2.5)  # the gateway reloads its routes from the catalog every second
    return table_name_for(ADMIN_NAMESPACE, "all-events")


def test_kubectl_activity_arrives_as_records(
    trail: Trail, kubectl: Any, everything_store: str,
) -> None:
    ns = create_namespace(unique_namespace("e2e"))
    history = table_name_for(ADMIN_NAMESPACE, EVENT_HISTORY_NAME)
    kubectl("create", "secret", "generic", "db-password", "-n", ns,
            "--from-literal=password=hunter2")
    kubectl("get", "secret", "db-password", "-n", ns)
    kubectl("get", "configmaps", "-n", ns, "--as=alice", "--as-group=system:masters")
    forbidden = kubectl("get", "secrets", "-n", ns, "--as=mallory", check=False)
    assert forbidden.returncode != 0
    kubectl("delete", "secret", "db-password", "-n", ns)

    def arrived() -> list[dict[str, Any]] | None:
        found = records(trail, everything_store, ns)
        names = {r["eventName"] for r in found}
        wanted = {"CreateSecret", "GetSecret", "ListConfigMap", "ListSecret", "DeleteSecret"}
        return found if wanted <= names else None

    found = trail.wait_for("the five calls as records", arrived, timeout=30)
    by_name = {r["eventName"]: r for r in found}

    create = by_name["CreateSecret"]
    assert (create["eventCategory"], create["readOnly"]) == ("Management", False)
    assert create["resourceTypes"] == ["secrets"]
    assert create["resourceNames"] == ["db-password"]
    assert create["eventSource"] == "k8s.io"
    assert create["account"] == "test-cluster"

    get = by_name["GetSecret"]
    assert (get["eventCategory"], get["readOnly"]) == ("Data", True)

    impersonated = by_name["ListConfigMap"]
    assert impersonated["username"] == "alice"
    assert impersonated["impersonatedBy"] == trail.plane.admin_user

    denied = by_name["ListSecret"]
    assert denied["username"] == "mallory"
    assert denied["errorCode"] == "Forbidden"
    assert by_name["DeleteSecret"]["eventCategory"] == "Management"

    # Event history: the management events, not the data events.
    history_names = {r["eventName"] for r in trail.wait_for(
        "Event history has the delete",
        lambda: [r for r in records(trail, history, ns) if r["eventName"] == "DeleteSecret"]
        and records(trail, history, ns))}
    assert {"CreateSecret", "DeleteSecret"} <= history_names
    assert "GetSecret" not in history_names


def test_secret_payloads_never_reach_the_store(
    trail: Trail, kubectl: Any, everything_store: str,
) -> None:
    ns = create_namespace(unique_namespace("redact"))
    kubectl("create", "secret", "generic", "api-key", "-n", ns,
            "--from-literal=key=s3cr3t-value-xyz")
    trail.wait_for("the create", lambda: records(trail, everything_store, ns))
    leaked = trail.store.rows(
        f"SELECT count() FROM trail.`{everything_store}` WHERE namespace = {{ns:String}}"
        " AND (position(requestParameters, 'czNjcjN0') > 0"
        " OR position(responseElements, 'czNjcjN0') > 0)",
        parameters={"ns": ns})
    assert leaked[0][0] == 0
