"""Integration: events from outside the Kubernetes API into EventDataStores.

CloudTrail Lake's integrations, in three shapes: a `push` channel (an HTTPS
endpoint taking PutAuditEvents batches), a `sidecar` collector tailing files in
selected pods, and an `s3Import` of CloudTrail log files. One kind with a
`type` rather than three kinds, as in CloudTrail, so `destinations` and status
mean the same everywhere; the CEL rules make each type's own fields required.
"""

from __future__ import annotations

from datetime import datetime
from typing import Final, Literal

from pydantic import Field

from trail_operator.crds.common import (
    AGE_COLUMN,
    READY_COLUMN,
    CelRule,
    Conditions,
    CrdModel,
    Int64,
    KindInfo,
    LabelSelector,
    ObjectNameSet,
    PrinterColumn,
    S3Access,
    s3_bucket_field,
)

# Key of the Secret named by `status.tokenSecretName` that holds a push channel's token.
TOKEN_SECRET_KEY: Final = "token"

IntegrationType = Literal["push", "sidecar", "s3Import"]
ImportState = Literal["Initializing", "InProgress", "Completed", "Failed", "Stopped"]


class S3ImportSource(S3Access):
    """CloudTrail log files to import (`<prefix>/AWSLogs/...` or `<prefix>/TrailLogs/...`)."""

    bucket: str = s3_bucket_field("The bucket holding the log files.")
    prefix: str | None = Field(None, description="Only objects under this key prefix.")
    continuous: bool = Field(
        False, description="Keep importing new log files as they arrive, instead of once."
    )
    start_time: datetime | None = Field(
        None, description="Only events at or after this time (RFC 3339)."
    )
    end_time: datetime | None = Field(None, description="Only events before this time (RFC 3339).")

    cel_rules = (
        CelRule(
            rule="!has(self.startTime) || !has(self.endTime) || self.startTime < self.endTime",
            message="startTime must be before endTime",
            field_path=".endTime",
            holds=lambda s: s.start_time is None or s.end_time is None or s.start_time < s.end_time,
        ),
    )


class IntegrationSpec(CrdModel):
    """Where events come from and which EventDataStores they go to."""

    type: IntegrationType = Field(
        description="`push`: an HTTPS endpoint for PutAuditEvents batches; `sidecar`: a "
        "collector in the pods matched by podSelector, tailing paths; `s3Import`: CloudTrail "
        "log files from s3."
    )
    destinations: ObjectNameSet = Field(
        min_length=1,
        max_length=20,
        description="Names of EventDataStores in this namespace that receive the events.",
    )
    pod_selector: LabelSelector | None = Field(
        None, description="Pods that get the collector sidecar (type sidecar)."
    )
    paths: list[str] | None = Field(
        None,
        min_length=1,
        max_length=50,
        description="Absolute paths of the files the collector tails (type sidecar).",
    )
    s3: S3ImportSource | None = Field(None, description="The log files to import (type s3Import).")

    cel_rules = (
        CelRule(
            rule="self.type != 'sidecar' || has(self.podSelector)",
            message="podSelector is required for type sidecar",
            field_path=".podSelector",
            reason="FieldValueRequired",
            holds=lambda s: s.type != "sidecar" or s.pod_selector is not None,
        ),
        CelRule(
            rule="self.type != 'sidecar' || has(self.paths)",
            message="paths is required for type sidecar",
            field_path=".paths",
            reason="FieldValueRequired",
            holds=lambda s: s.type != "sidecar" or s.paths is not None,
        ),
        CelRule(
            rule="self.type == 'sidecar' || !has(self.podSelector)",
            message="podSelector is only used by type sidecar",
            field_path=".podSelector",
            reason="FieldValueForbidden",
            holds=lambda s: s.type == "sidecar" or s.pod_selector is None,
        ),
        CelRule(
            rule="self.type == 'sidecar' || !has(self.paths)",
            message="paths is only used by type sidecar",
            field_path=".paths",
            reason="FieldValueForbidden",
            holds=lambda s: s.type == "sidecar" or s.paths is None,
        ),
        CelRule(
            rule="self.type != 's3Import' || has(self.s3)",
            message="s3 is required for type s3Import",
            field_path=".s3",
            reason="FieldValueRequired",
            holds=lambda s: s.type != "s3Import" or s.s3 is not None,
        ),
        CelRule(
            rule="self.type == 's3Import' || !has(self.s3)",
            message="s3 is only used by type s3Import",
            field_path=".s3",
            reason="FieldValueForbidden",
            holds=lambda s: s.type == "s3Import" or s.s3 is None,
        ),
    )


class ImportProgress(CrdModel):
    """Progress of an s3Import, as CloudTrail's GetImport reports it."""

    state: ImportState | None = Field(None, description="Where the import stands.")
    prefixes_found: Int64 | None = Field(None, description="Day prefixes found to import.")
    prefixes_completed: Int64 | None = Field(None, description="Day prefixes fully imported.")
    files_completed: Int64 | None = Field(None, description="Log files imported.")
    events_completed: Int64 | None = Field(None, description="Events imported.")
    failed_entries: Int64 | None = Field(
        None, description="Log files or events that could not be imported."
    )
    last_object_key: str | None = Field(
        None, description="The last object imported; a continuous import resumes after it."
    )
    created_time: datetime | None = Field(None, description="When the import started.")
    updated_time: datetime | None = Field(None, description="When the progress last changed.")


class IntegrationStatus(CrdModel):
    """What the integration has taken in so far."""

    observed_generation: int | None = Field(
        None, ge=0, description="The .metadata.generation this status was computed from."
    )
    endpoint: str | None = Field(
        None, description="URL to send PutAuditEvents batches to (type push)."
    )
    token_secret_name: str | None = Field(
        None,
        description=f"Secret whose `{TOKEN_SECRET_KEY}` key is the bearer token of the "
        "endpoint (type push).",
    )
    injected_pods: int | None = Field(
        None, ge=0, description="Pods running the collector sidecar (type sidecar)."
    )
    ingested_events: Int64 | None = Field(None, description="Events stored.")
    failed_events: Int64 | None = Field(None, description="Events refused or not stored.")
    last_event_time: datetime | None = Field(
        None, description="When the latest event was received."
    )
    import_progress: ImportProgress | None = Field(
        None, description="Progress of the import (type s3Import)."
    )
    conditions: Conditions = Field(
        default_factory=list,
        description="Conditions of the integration; Ready when it takes events.",
    )


INTEGRATION: Final = KindInfo(
    kind="Integration",
    plural="integrations",
    singular="integration",
    short_names=("integ",),
    spec_model=IntegrationSpec,
    status_model=IntegrationStatus,
    description="Brings events from apps, pod logs or CloudTrail log files into "
    "EventDataStores, like a CloudTrail Lake integration.",
    printer_columns=(
        PrinterColumn("Type", "string", ".spec.type", "push, sidecar or s3Import."),
        PrinterColumn("Ingested", "integer", ".status.ingestedEvents", "Events stored."),
        PrinterColumn("Failed", "integer", ".status.failedEvents", "Events not stored."),
        PrinterColumn("Last-Event", "date", ".status.lastEventTime", "Latest event received."),
        READY_COLUMN,
        PrinterColumn("Endpoint", "string", ".status.endpoint", "Push endpoint.", priority=1),
        AGE_COLUMN,
    ),
)
