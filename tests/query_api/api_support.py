"""Two tenants, their stores and a reader, for the query API and trailctl tests.

Against the running `trail` fixture and the real apiserver: namespace A holds
a ServiceAccount `reader` with a RoleBinding to `get eventdatastores/events`
in A; namespace B holds a store the reader may not read; the admin (static
token in `system:masters`) may read everything, the Event history included.
Events are inserted straight into the stores' tables, so every test knows
exactly which events exist.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import requests
import yaml
from kubernetes import client as k8s

from trail_fixtures import ADMIN_NAMESPACE, Trail, create_namespace, unique_namespace
from trail_operator.config import API_GROUP, API_VERSION, EVENT_HISTORY_NAME
from trail_operator.events.record import format_event_time
from trail_operator.sandbox.controlplane import ControlPlane
from trail_operator.store.naming import table_name_for

STORE = "audit"
EVENT_COUNT = 7


def make_record(namespace: str, username: str, age: timedelta, index: int) -> dict[str, Any]:
    return {
        "eventVersion": "1.09",
        "eventID": str(uuid.uuid4()),
        "eventTime": format_event_time(datetime.now(UTC) - age),
        "eventSource": "k8s.io",
        "eventName": "CreateConfigMap",
        "eventType": "KubernetesApiCall",
        "eventCategory": "Management",
        "readOnly": False,
        "managementEvent": True,
        "userIdentity": {"type": "User", "username": username, "groups": ["dev"]},
        "sourceIPAddress": "10.1.2.3",
        "userAgent": "kubectl/v1.32.9",
        "requestID": str(uuid.uuid4()),
        "resources": [{"type": "configmaps", "name": f"cm-{index}", "namespace": namespace}],
        "namespace": namespace,
        "recipientAccountId": "test-cluster",
        "awsRegion": "test-1",
    }


def insert(trail: Trail, table: str, records: list[dict[str, Any]]) -> None:
    trail.store.insert_json_each_row(table, b"\n".join(orjson.dumps(r) for r in records))


@dataclass(frozen=True)
class Tenants:
    """What the tests read: two stores, a reader of the first, and the events inserted."""

    ns_a: str
    ns_b: str
    table_a: str
    table_b: str
    uid_b: str
    history_table: str
    reader_token: str
    reader_kubeconfig: Path
    # Usernames that mark the events inserted into A, B and the Event history.
    user_a: str
    user_b: str
    user_history: str
    ids_a: tuple[str, ...]


def create_store(namespace: str, name: str) -> None:
    body = {"apiVersion": f"{API_GROUP}/{API_VERSION}", "kind": "EventDataStore",
            "metadata": {"name": name, "namespace": namespace}, "spec": {}}
    k8s.CustomObjectsApi().create_namespaced_custom_object(
        API_GROUP, API_VERSION, namespace, "eventdatastores", body)


def grant_event_reading(namespace: str, service_account: str) -> None:
    rbac = k8s.RbacAuthorizationV1Api()
    rbac.create_namespaced_role(namespace, k8s.V1Role(
        metadata=k8s.V1ObjectMeta(name="event-reader"),
        rules=[k8s.V1PolicyRule(api_groups=[API_GROUP], resources=["eventdatastores/events"],
                                verbs=["get"])]))
    rbac.create_namespaced_role_binding(namespace, k8s.V1RoleBinding(
        metadata=k8s.V1ObjectMeta(name="event-reader"),
        role_ref=k8s.V1RoleRef(api_group="rbac.authorization.k8s.io", kind="Role",
                               name="event-reader"),
        subjects=[k8s.RbacV1Subject(kind="ServiceAccount", name=service_account,
                                    namespace=namespace)]))


def make_tenants(trail: Trail, control_plane: ControlPlane) -> Tenants:
    """Namespaces A and B with a store each, a reader of A, and known events."""
    ns_a = create_namespace(unique_namespace("qapi-a"))
    ns_b = create_namespace(unique_namespace("qapi-b"))
    for ns in (ns_a, ns_b):
        create_store(ns, STORE)
    kubeconfig = control_plane.service_account_kubeconfig(ns_a, "reader")
    token = yaml.safe_load(kubeconfig.read_text())["users"][0]["user"]["token"]
    grant_event_reading(ns_a, "reader")
    for ns, name in ((ns_a, STORE), (ns_b, STORE), (ADMIN_NAMESPACE, EVENT_HISTORY_NAME)):
        trail.wait_ready(ns, name)
    table_a, table_b = table_name_for(ns_a, STORE), table_name_for(ns_b, STORE)
    history_table = table_name_for(ADMIN_NAMESPACE, EVENT_HISTORY_NAME)
    uid_b = trail.eds(ns_b, STORE)["metadata"]["uid"]

    suffix = uuid.uuid4().hex[:8]
    user_a, user_b, user_history = f"alice-{suffix}", f"bob-{suffix}", f"root-{suffix}"
    records_a = [make_record(ns_a, user_a, timedelta(seconds=10 + i), i)
                 for i in range(EVENT_COUNT)]
    insert(trail, table_a, records_a)
    insert(trail, table_b, [make_record(ns_b, user_b, timedelta(seconds=5), 0)])
    insert(trail, history_table, [make_record(ns_a, user_history, timedelta(seconds=5), 0)])
    time.sleep(2.5)  # the gateway reloads the store catalog every second
    return Tenants(
        ns_a=ns_a, ns_b=ns_b, table_a=table_a, table_b=table_b,
        uid_b=uid_b, history_table=history_table, reader_token=token,
        reader_kubeconfig=kubeconfig, user_a=user_a, user_b=user_b, user_history=user_history,
        ids_a=tuple(r["eventID"] for r in records_a),
    )


@dataclass(frozen=True)
class QueryApi:
    """Posts to the gateway's query API over HTTPS, with the sandbox CA."""

    trail: Trail

    def post(self, path: str, body: Any, token: str | None,
             headers: dict[str, str] | None = None) -> requests.Response:
        sent = dict(headers or {})
        if token is not None:
            sent["Authorization"] = f"Bearer {token}"
        data = body if isinstance(body, bytes) else orjson.dumps(body)
        # verify= per call: REQUESTS_CA_BUNDLE in the environment would override a session's.
        return requests.post(f"{self.trail.gateway_url}{path}", data=data, headers=sent,
                             verify=str(self.trail.plane.pki.ca_cert), timeout=60)

    def lookup(self, body: Any, token: str | None) -> requests.Response:
        return self.post("/LookupEvents", body, token)

    def query(self, body: Any, token: str | None) -> requests.Response:
        return self.post("/Query", body, token)
