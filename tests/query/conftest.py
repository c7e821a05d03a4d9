"""The session's embedded store, and event data to query in it.

chDB allows one data path per process, so these tests use the session's one
store (the `store` fixture of tests/trail_fixtures.py) and each data set gets
its own table, made once.
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest

from trail_operator.events.record import format_event_time
from trail_operator.query.samples import SAMPLE_SOURCE_IP, SAMPLE_USER
from trail_operator.store.client import Store
from trail_operator.store.ddl import TableSpec
from trail_operator.store.tables import ensure_table

DATABASE = "trail"
USERS = (SAMPLE_USER, "bob", "carol", "system:serviceaccount:kube-system:deployment-controller")
NAMES = (
    "GetSecret",
    "ListPods",
    "CreateDeployment",
    "UpdateDeployment",
    "DeleteConfigMap",
    "ExecPod",
)
SOURCES = ("k8s.io", "apps.k8s.io")
NAMESPACES = ("default", "payments", "kube-system")
ERRORS = ("", "", "", "", "Forbidden", "NotFound")

Event = dict[str, Any]


def make_event(rnd: random.Random, moment: datetime, **overrides: Any) -> Event:
    """A plausible Kubernetes API event at `moment`; `overrides` replace fields."""
    name = rnd.choice(NAMES)
    namespace = rnd.choice(NAMESPACES)
    resource_type = {
        "GetSecret": "secrets",
        "ListPods": "pods",
        "CreateDeployment": "deployments",
        "UpdateDeployment": "deployments",
        "DeleteConfigMap": "configmaps",
        "ExecPod": "pods",
    }[name]
    error = rnd.choice(ERRORS)
    resource = {"type": resource_type, "name": f"{resource_type}-{rnd.randrange(5)}"}
    resource["namespace"] = namespace
    if resource_type == "deployments":
        resource["apiGroup"] = "apps"
    user = rnd.choice(USERS)
    event: Event = {
        "eventVersion": "1.09",
        "eventID": str(uuid.UUID(int=rnd.getrandbits(128), version=4)),
        "eventTime": format_event_time(moment),
        "eventSource": "apps.k8s.io" if resource_type == "deployments" else "k8s.io",
        "eventName": name,
        "eventType": "KubernetesApiCall",
        "eventCategory": "Data" if name in ("GetSecret", "ExecPod") else "Management",
        "readOnly": name in ("GetSecret", "ListPods"),
        "managementEvent": name not in ("GetSecret", "ExecPod"),
        "userIdentity": {
            "type": "ServiceAccount" if user.startswith("system:") else "User",
            "username": user,
            "uid": str(uuid.UUID(int=rnd.getrandbits(128), version=4)),
            "groups": ["system:authenticated", f"team-{user.split(':')[-1]}"],
        },
        "sourceIPAddress": rnd.choice((SAMPLE_SOURCE_IP, "10.0.0.12", "10.0.3.7")),
        "userAgent": "kubectl/v1.32.9 (linux/amd64) kubernetes/abc1234",
        "requestID": str(uuid.UUID(int=rnd.getrandbits(128), version=4)),
        "requestParameters": {"name": f"{resource_type}-{rnd.randrange(5)}"},
        "responseElements": {"kind": "Status", "code": 403 if error == "Forbidden" else 200},
        "resources": [resource],
        "namespace": namespace,
        "recipientAccountId": "local",
        "awsRegion": "local-1",
    }
    if name == "UpdateDeployment":
        event["requestParameters"] = {"spec": {"replicas": rnd.choice((1, 2, 3))}}
    if error:
        event["errorCode"] = error
        event["errorMessage"] = f"{error.lower()}: the request was refused"
    event.update(overrides)
    return event


def generate_events(count: int, seed: int, now: datetime, span: timedelta) -> list[Event]:
    """`count` events spread over (now - span, now - 1 min], each at a distinct millisecond."""
    rnd = random.Random(seed)
    span_ms = int(span.total_seconds() * 1000) - 60_000
    offsets = rnd.sample(range(60_000, 60_000 + span_ms), count)
    return [make_event(rnd, now - timedelta(milliseconds=offset)) for offset in offsets]


def to_json_each_row(events: list[Event]) -> bytes:
    return b"\n".join(orjson.dumps(event) for event in events)


@pytest.fixture(scope="session")
def query_store(store: Store) -> Store:
    assert store.database == DATABASE
    return store


@pytest.fixture(scope="session")
def make_table(query_store: Store) -> Callable[..., str]:
    """Create a fresh event table holding `events` (one insert per batch) and return its name."""
    counter = iter(range(1_000_000))

    def make(*batches: list[Event], stop_merges: bool = False) -> str:
        table = f"query_test_{next(counter)}"
        ensure_table(query_store, TableSpec(DATABASE, table, retention_days=3653))
        if stop_merges:
            # Keeps retried copies in separate parts, as they are before a merge.
            query_store.command(f"SYSTEM STOP MERGES `{DATABASE}`.`{table}`")
        for batch in batches:
            query_store.insert_json_each_row(table, to_json_each_row(batch))
        return table

    return make


@dataclass(frozen=True)
class EventFactory:
    """Test data relative to one `now` for the session (tests import no helper modules)."""

    now: datetime

    def generate(self, count: int, seed: int, span: timedelta = timedelta(days=6)) -> list[Event]:
        return generate_events(count, seed, self.now, span)

    def one(self, seed: int, age: timedelta, **overrides: Any) -> Event:
        return make_event(random.Random(seed), self.now - age, **overrides)


@pytest.fixture(scope="session")
def events() -> EventFactory:
    return EventFactory(now=datetime.now(UTC).replace(microsecond=0))
