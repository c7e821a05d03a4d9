"""The always-on Event history store, made at install in the admin namespace.

CloudTrail keeps 90 days of management events without any set-up; this is
that store: an ordinary EventDataStore, so it is visible, queryable and
protected from deletion like any other.
"""

from __future__ import annotations

from typing import Any

from kubernetes import client as k8s

from trail_operator.config import (
    API_GROUP,
    API_VERSION,
    EVENT_HISTORY_NAME,
    EVENT_HISTORY_RETENTION_DAYS,
    Settings,
)


def event_history_manifest(settings: Settings) -> dict[str, Any]:
    return {
        "apiVersion": f"{API_GROUP}/{API_VERSION}",
        "kind": "EventDataStore",
        "metadata": {
            "name": EVENT_HISTORY_NAME,
            "namespace": settings.admin_namespace,
            "labels": {"app.kubernetes.io/managed-by": "trail-operator"},
        },
        "spec": {
            "retentionDays": EVENT_HISTORY_RETENTION_DAYS,
            "terminationProtection": True,
            "deletionPolicy": "Retain",
        },
    }


def ensure_event_history(settings: Settings) -> bool:
    """Create the admin namespace and the Event history store if missing; True if created."""
    core = k8s.CoreV1Api()
    try:
        core.create_namespace(k8s.V1Namespace(metadata=k8s.V1ObjectMeta(
            name=settings.admin_namespace)))
    except k8s.ApiException as exc:
        if exc.status != 409:
            raise
    try:
        k8s.CustomObjectsApi().create_namespaced_custom_object(
            API_GROUP, API_VERSION, settings.admin_namespace, "eventdatastores",
            event_history_manifest(settings),
        )
    except k8s.ApiException as exc:
        if exc.status == 409:
            return False
        raise
    return True
