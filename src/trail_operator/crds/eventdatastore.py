"""EventDataStore: a ClickHouse table of events with a retention period.

CloudTrail Lake's event data store, mapped to Kubernetes. Its termination
protection cannot be a schema rule (schemas only see writes, not deletes), so
this module also defines the ValidatingAdmissionPolicy that refuses to delete
a protected store; the generator ships it beside the CRD.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Final, Literal

from pydantic import Field

from trail_operator.config import API_GROUP
from trail_operator.crds.common import (
    ADVANCED_EVENT_SELECTORS_DESCRIPTION,
    AGE_COLUMN,
    MAX_ADVANCED_EVENT_SELECTORS,
    READY_COLUMN,
    AdvancedEventSelector,
    Conditions,
    CrdModel,
    Int64,
    KindInfo,
    PrinterColumn,
    SecretRef,
)

DEFAULT_RETENTION_DAYS: Final = 366
MIN_RETENTION_DAYS: Final = 7
MAX_RETENTION_DAYS: Final = 3653

# Keys of the Secret named by `spec.clickhouse.secretRef`.
CLICKHOUSE_DSN_KEY: Final = "dsn"
CLICKHOUSE_USER_KEY: Final = "user"
CLICKHOUSE_PASSWORD_KEY: Final = "password"
CLICKHOUSE_CLUSTER_KEY: Final = "cluster"

DeletionPolicy = Literal["Retain", "Delete"]
EventDataStoreState = Literal["Created", "Enabled", "StoppedIngestion", "PendingDeletion"]


class ClickHouseConnection(CrdModel):
    """Keep this store's table on another ClickHouse server instead of the operator's store."""

    secret_ref: SecretRef = Field(
        description=(
            f"Secret with the connection: `{CLICKHOUSE_DSN_KEY}` (e.g. `https://host:8443`), "
            f"optional `{CLICKHOUSE_USER_KEY}`, `{CLICKHOUSE_PASSWORD_KEY}` and "
            f"`{CLICKHOUSE_CLUSTER_KEY}`."
        )
    )
    cluster: str | None = Field(
        None,
        min_length=1,
        description="ClickHouse cluster: DDL runs ON CLUSTER and tables are Replicated. "
        "Overrides the Secret's `cluster` key.",
    )


class EventDataStoreSpec(CrdModel):
    """What to keep, for how long, and where."""

    retention_days: int = Field(
        DEFAULT_RETENTION_DAYS,
        ge=MIN_RETENTION_DAYS,
        le=MAX_RETENTION_DAYS,
        description="Days an event is kept, counted from its eventTime (the table's TTL).",
    )
    advanced_event_selectors: list[AdvancedEventSelector] | None = Field(
        None,
        min_length=1,
        max_length=MAX_ADVANCED_EVENT_SELECTORS,
        description=ADVANCED_EVENT_SELECTORS_DESCRIPTION,
    )
    ingestion_enabled: bool = Field(
        True, description="Whether new events are stored; false keeps the data but stops ingest."
    )
    termination_protection: bool = Field(
        True, description="While true, deleting this EventDataStore is refused."
    )
    deletion_policy: DeletionPolicy = Field(
        "Retain",
        description="What happens to the table when this EventDataStore is deleted: "
        "Retain keeps it, Delete drops it.",
    )
    clickhouse: ClickHouseConnection | None = Field(
        None, description="Another ClickHouse server for this store; default: the operator's."
    )


class EventDataStoreStatus(CrdModel):
    """What the operator last saw of the store."""

    observed_generation: int | None = Field(
        None, ge=0, description="The .metadata.generation this status was computed from."
    )
    state: EventDataStoreState | None = Field(None, description="Lifecycle state of the store.")
    table: str | None = Field(None, description="The ClickHouse table, as `database.table`.")
    event_count: Int64 | None = Field(None, description="Events in the table.")
    bytes_on_disk: Int64 | None = Field(None, description="Compressed size of the table.")
    oldest_event_time: datetime | None = Field(None, description="eventTime of the oldest event.")
    newest_event_time: datetime | None = Field(None, description="eventTime of the newest event.")
    conditions: Conditions = Field(
        default_factory=list, description="Conditions of the store; Ready when it takes events."
    )


EVENT_DATA_STORE: Final = KindInfo(
    kind="EventDataStore",
    plural="eventdatastores",
    singular="eventdatastore",
    short_names=("eds",),
    spec_model=EventDataStoreSpec,
    status_model=EventDataStoreStatus,
    description="A store of audit events in ClickHouse with a retention period, "
    "like a CloudTrail Lake event data store.",
    printer_columns=(
        PrinterColumn("State", "string", ".status.state", "Lifecycle state of the store."),
        PrinterColumn("Retention", "integer", ".spec.retentionDays", "Retention in days."),
        PrinterColumn("Events", "integer", ".status.eventCount", "Events in the table."),
        PrinterColumn("Table", "string", ".status.table", "The ClickHouse table."),
        READY_COLUMN,
        AGE_COLUMN,
    ),
)

TERMINATION_PROTECTION_POLICY_NAME: Final = f"eventdatastore-termination-protection.{API_GROUP}"


def termination_protection_policy(kind: KindInfo = EVENT_DATA_STORE) -> list[dict[str, Any]]:
    """The ValidatingAdmissionPolicy and its binding that refuse deleting a protected store.

    A policy rather than a webhook or a finalizer: it needs no running operator,
    so protection holds even while the operator is down, and the refusal comes
    back to `kubectl delete` at once with the reason.
    """
    policy = {
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "ValidatingAdmissionPolicy",
        "metadata": {"name": TERMINATION_PROTECTION_POLICY_NAME},
        "spec": {
            "failurePolicy": "Fail",
            "matchConstraints": {
                "resourceRules": [
                    {
                        "apiGroups": [kind.group],
                        "apiVersions": ["*"],
                        "operations": ["DELETE"],
                        "resources": [kind.plural],
                        # Spelled out although it is the default: the server adds it,
                        # and `kubectl apply` would otherwise re-send the rule every time.
                        "scope": "Namespaced",
                    }
                ]
            },
            "validations": [
                {
                    "expression": "!has(oldObject.spec.terminationProtection)"
                    " || oldObject.spec.terminationProtection == false",
                    "messageExpression": f"'{kind.kind} ' + oldObject.metadata.namespace + '/'"
                    " + oldObject.metadata.name + ' has terminationProtection enabled;"
                    " set spec.terminationProtection to false before deleting it'",
                    "reason": "Forbidden",
                }
            ],
        },
    }
    binding = {
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "ValidatingAdmissionPolicyBinding",
        "metadata": {"name": TERMINATION_PROTECTION_POLICY_NAME},
        "spec": {
            "policyName": TERMINATION_PROTECTION_POLICY_NAME,
            "validationActions": ["Deny"],
        },
    }
    return [policy, binding]
