"""Example specs shared by the pure and the apiserver tests of the CRDs: the same
inputs must be accepted (or refused) by the models and by the real apiserver."""

from __future__ import annotations

import copy
from typing import Any

from pydantic import BaseModel

from trail_operator.crds import EventDataStoreSpec, IntegrationSpec, TrailSpec

VALID_EDS_SPEC: dict[str, Any] = {
    "retentionDays": 30,
    "advancedEventSelectors": [
        {
            "name": "secret reads",
            "fieldSelectors": [
                {"field": "eventCategory", "equals": ["Data"]},
                {"field": "resources.type", "equals": ["secrets"]},
                {"field": "userIdentity.username", "notStartsWith": ["system:"]},
                {"field": "readOnly", "equals": ["false"]},
            ],
        }
    ],
    "deletionPolicy": "Delete",
    "clickhouse": {"secretRef": {"name": "ch-conn"}, "cluster": "main"},
}
VALID_TRAIL_SPEC: dict[str, Any] = {
    "eventSelectors": [{"readWriteType": "WriteOnly", "dataResources": [{"type": "pods/exec"}]}],
    "excludeNamespaces": ["kube-system"],
    "s3": {
        "bucket": "audit-logs",
        "prefix": "prod",
        "endpoint": "http://127.0.0.1:7070",
        "credentialsSecretRef": {"name": "s3-creds"},
        "serverSideEncryption": "aws:kms",
        "kmsKeyId": "alias/trail",
    },
    "logFileValidation": {"signingKeySecretRef": {"name": "trail-key", "key": "key.pem"}},
}
VALID_INTEGRATION_SPECS: dict[str, dict[str, Any]] = {
    "push": {"type": "push", "destinations": ["apps"]},
    "sidecar": {
        "type": "sidecar",
        "destinations": ["apps"],
        "podSelector": {"matchLabels": {"app": "shop"}},
        "paths": ["/var/log/app/audit.log"],
    },
    "s3Import": {
        "type": "s3Import",
        "destinations": ["apps", "archive"],
        "s3": {
            "bucket": "old-trail",
            "startTime": "2025-01-01T00:00:00Z",
            "endTime": "2025-02-01T00:00:00Z",
        },
    },
}


def with_changes(spec: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    """A deep copy of `spec` with the dotted `path` set to `value` (deleted if None)."""
    changed = copy.deepcopy(spec)
    *parents, last = path.split(".")
    node: Any = changed
    for part in parents:
        node = node[int(part)] if part.isdigit() else node[part]
    if value is None:
        del node[last]
    else:
        node[last] = value
    return changed


# Specs the apiserver refuses (see test_crds_on_apiserver.py), with the field it names.
INVALID_SPECS: list[tuple[str, type[BaseModel], dict[str, Any], str]] = [
    ("retention below 7 days", EventDataStoreSpec, {"retentionDays": 3}, "retentionDays"),
    ("retention above 10 years", EventDataStoreSpec, {"retentionDays": 4000}, "retentionDays"),
    (
        "unknown selector field",
        EventDataStoreSpec,
        with_changes(VALID_EDS_SPEC, "advancedEventSelectors.0.fieldSelectors.0.field", "color"),
        "field",
    ),
    (
        "unknown selector operator",
        EventDataStoreSpec,
        {
            "advancedEventSelectors": [
                {"fieldSelectors": [{"field": "eventName", "contains": ["x"]}]}
            ]
        },
        "contains",
    ),
    (
        "selector without operator",
        EventDataStoreSpec,
        {"advancedEventSelectors": [{"fieldSelectors": [{"field": "eventName"}]}]},
        "at least one operator",
    ),
    (
        "empty operator list",
        EventDataStoreSpec,
        {"advancedEventSelectors": [{"fieldSelectors": [{"field": "eventName", "equals": []}]}]},
        "equals",
    ),
    (
        "readOnly compared by prefix",
        EventDataStoreSpec,
        {
            "advancedEventSelectors": [
                {"fieldSelectors": [{"field": "readOnly", "startsWith": ["t"]}]}
            ]
        },
        "readOnly takes only equals and notEquals",
    ),
    (
        "readOnly value not a boolean",
        EventDataStoreSpec,
        {
            "advancedEventSelectors": [
                {"fieldSelectors": [{"field": "readOnly", "equals": ["yes"]}]}
            ]
        },
        "readOnly values must be true or false",
    ),
    ("unknown deletion policy", EventDataStoreSpec, {"deletionPolicy": "Orphan"}, "deletionPolicy"),
    (
        "aws:kms without kmsKeyId",
        TrailSpec,
        with_changes(VALID_TRAIL_SPEC, "s3.kmsKeyId", None),
        "kmsKeyId",
    ),
    (
        "kmsKeyId without aws:kms",
        TrailSpec,
        with_changes(VALID_TRAIL_SPEC, "s3.serverSideEncryption", "AES256"),
        "kmsKeyId",
    ),
    (
        "trail without bucket",
        TrailSpec,
        with_changes(VALID_TRAIL_SPEC, "s3.bucket", None),
        "bucket",
    ),
    (
        "both kinds of selectors",
        TrailSpec,
        {**VALID_TRAIL_SPEC, "advancedEventSelectors": VALID_EDS_SPEC["advancedEventSelectors"]},
        "advancedEventSelectors",
    ),
    (
        "duplicate namespaces",
        TrailSpec,
        {**VALID_TRAIL_SPEC, "excludeNamespaces": ["a", "a"]},
        "excludeNamespaces",
    ),
    (
        "sidecar without podSelector",
        IntegrationSpec,
        with_changes(VALID_INTEGRATION_SPECS["sidecar"], "podSelector", None),
        "podSelector",
    ),
    (
        "sidecar without paths",
        IntegrationSpec,
        with_changes(VALID_INTEGRATION_SPECS["sidecar"], "paths", None),
        "paths",
    ),
    (
        "s3Import without s3",
        IntegrationSpec,
        with_changes(VALID_INTEGRATION_SPECS["s3Import"], "s3", None),
        "s3",
    ),
    (
        "s3 on a push integration",
        IntegrationSpec,
        {**VALID_INTEGRATION_SPECS["push"], "s3": {"bucket": "old-trail"}},
        "s3",
    ),
    (
        "import window ends before it starts",
        IntegrationSpec,
        with_changes(VALID_INTEGRATION_SPECS["s3Import"], "s3.endTime", "2024-01-01T00:00:00Z"),
        "endTime",
    ),
    (
        "no destinations",
        IntegrationSpec,
        {"type": "push", "destinations": []},
        "destinations",
    ),
    ("unknown integration type", IntegrationSpec, {"type": "pull", "destinations": ["a"]}, "type"),
]
