"""Trail: delivers selected events to S3 as CloudTrail log files, with signed digests.

Mirrors CloudTrail's trail: basic `eventSelectors` or `advancedEventSelectors`
(one or the other, as in CloudTrail), an S3 destination, and log file
validation. Cross-field rules live here as `CelRule`s so the apiserver and the
models refuse the same specs.
"""

from __future__ import annotations

from datetime import datetime
from typing import Final, Literal

from pydantic import Field

from trail_operator.crds.common import (
    ADVANCED_EVENT_SELECTORS_DESCRIPTION,
    AGE_COLUMN,
    MAX_ADVANCED_EVENT_SELECTORS,
    READY_COLUMN,
    AdvancedEventSelector,
    CelRule,
    Conditions,
    CrdModel,
    Int64,
    KindInfo,
    NamespaceSet,
    PrinterColumn,
    S3Access,
    SecretKeyRef,
    s3_bucket_field,
)

DEFAULT_DELIVERY_INTERVAL_SECONDS: Final = 60
DEFAULT_DIGEST_INTERVAL_SECONDS: Final = 3600
# Key of the signing Secret that holds the PEM RSA private key, when `key` is not given.
DEFAULT_SIGNING_KEY_KEY: Final = "private-key.pem"

ServerSideEncryption = Literal["AES256", "aws:kms"]
ReadWriteType = Literal["ReadOnly", "WriteOnly", "All"]


class DataResource(CrdModel):
    """Data events to log for one kind of resource (CloudTrail's DataResource)."""

    type: str = Field(
        min_length=1,
        description="A resource such as `secrets` or `configmaps`, or a subresource such as "
        "`pods/exec` or `pods/log`.",
    )
    values: list[str] | None = Field(
        None,
        min_length=1,
        description="Only objects whose `namespace/name` starts with one of these; omit for all.",
    )


class EventSelector(CrdModel):
    """A basic event selector, as CloudTrail's EventSelector."""

    read_write_type: ReadWriteType = Field(
        "All", description="Log read-only events, write events, or both."
    )
    include_management_events: bool = Field(
        True, description="Whether management events are logged."
    )
    data_resources: list[DataResource] | None = Field(
        None, description="Data events to log; none are logged without it."
    )
    exclude_management_event_sources: list[str] | None = Field(
        None,
        description="eventSource values (API groups such as `coordination.k8s.io`) whose "
        "management events are not logged.",
    )


class S3Destination(S3Access):
    """Where log files and digests are delivered."""

    bucket: str = s3_bucket_field("The bucket; it must exist.")
    prefix: str | None = Field(
        None,
        max_length=200,
        description="Key prefix; files go under `<prefix>/TrailLogs/...`.",
    )
    server_side_encryption: ServerSideEncryption | None = Field(
        None, description="Server-side encryption of delivered files; `aws:kms` needs kmsKeyId."
    )
    kms_key_id: str | None = Field(
        None, min_length=1, description="KMS key ID or ARN, for `aws:kms` encryption."
    )
    delivery_interval_seconds: int = Field(
        DEFAULT_DELIVERY_INTERVAL_SECONDS,
        ge=1,
        le=86400,
        description="Longest time events wait before they are delivered in a log file.",
    )

    cel_rules = (
        CelRule(
            rule="!has(self.serverSideEncryption) || self.serverSideEncryption != 'aws:kms'"
            " || has(self.kmsKeyId)",
            message="kmsKeyId is required when serverSideEncryption is aws:kms",
            field_path=".kmsKeyId",
            reason="FieldValueRequired",
            holds=lambda s: s.server_side_encryption != "aws:kms" or s.kms_key_id is not None,
        ),
        CelRule(
            rule="!has(self.kmsKeyId) || "
            "(has(self.serverSideEncryption) && self.serverSideEncryption == 'aws:kms')",
            message="kmsKeyId is only used with serverSideEncryption: aws:kms",
            field_path=".kmsKeyId",
            reason="FieldValueForbidden",
            holds=lambda s: s.kms_key_id is None or s.server_side_encryption == "aws:kms",
        ),
    )


class LogFileValidation(CrdModel):
    """Signed digest files that prove delivered log files were not changed or deleted."""

    enabled: bool = Field(True, description="Whether digest files are written and signed.")
    digest_interval_seconds: int = Field(
        DEFAULT_DIGEST_INTERVAL_SECONDS,
        ge=1,
        le=86400,
        description="How often a digest file is written, even when no log file was delivered.",
    )
    signing_key_secret_ref: SecretKeyRef | None = Field(
        None,
        description=f"Secret key with the PEM RSA private key that signs digests (key default "
        f"`{DEFAULT_SIGNING_KEY_KEY}`); generated and stored in a Secret when absent.",
    )


class TrailSpec(CrdModel):
    """Which events to deliver, and where."""

    is_logging: bool = Field(True, description="Whether events are delivered; false pauses.")
    event_selectors: list[EventSelector] | None = Field(
        None,
        min_length=1,
        max_length=5,
        description="Basic selectors; use these or advancedEventSelectors, not both.",
    )
    advanced_event_selectors: list[AdvancedEventSelector] | None = Field(
        None,
        min_length=1,
        max_length=MAX_ADVANCED_EVENT_SELECTORS,
        description=ADVANCED_EVENT_SELECTORS_DESCRIPTION,
    )
    include_namespaces: NamespaceSet | None = Field(
        None, description="Only events about these namespaces (cluster-wide events excluded)."
    )
    exclude_namespaces: NamespaceSet | None = Field(
        None, description="Never events about these namespaces; wins over includeNamespaces."
    )
    s3: S3Destination = Field(description="The S3 destination of log files and digests.")
    log_file_validation: LogFileValidation | None = Field(
        None, description="Signed digest files; off when absent."
    )

    cel_rules = (
        CelRule(
            rule="!has(self.eventSelectors) || !has(self.advancedEventSelectors)",
            message="use eventSelectors or advancedEventSelectors, not both",
            field_path=".advancedEventSelectors",
            reason="FieldValueForbidden",
            holds=lambda s: s.event_selectors is None or s.advanced_event_selectors is None,
        ),
    )


class TrailStatus(CrdModel):
    """Delivery progress of the trail."""

    observed_generation: int | None = Field(
        None, ge=0, description="The .metadata.generation this status was computed from."
    )
    is_logging: bool | None = Field(None, description="Whether the trail is delivering events.")
    latest_delivery_time: datetime | None = Field(
        None, description="When a log file was last delivered."
    )
    latest_delivery_error: str | None = Field(
        None, description="The error of the last failed delivery; cleared on success."
    )
    latest_digest_delivery_time: datetime | None = Field(
        None, description="When a digest file was last delivered."
    )
    latest_digest_delivery_error: str | None = Field(
        None, description="The error of the last failed digest delivery; cleared on success."
    )
    signing_key_secret_name: str | None = Field(
        None, description="The Secret holding the digest signing key in use."
    )
    digest_public_key_fingerprint: str | None = Field(
        None, description="Fingerprint of the public key that verifies digests."
    )
    delivered_files: Int64 | None = Field(None, description="Log files delivered.")
    delivered_events: Int64 | None = Field(None, description="Events delivered.")
    conditions: Conditions = Field(
        default_factory=list, description="Conditions of the trail; Ready when delivering."
    )


TRAIL: Final = KindInfo(
    kind="Trail",
    plural="trails",
    singular="trail",
    short_names=("trail",),
    spec_model=TrailSpec,
    status_model=TrailStatus,
    description="Delivers audit events to S3 as CloudTrail log files, with signed digests.",
    printer_columns=(
        PrinterColumn("Logging", "boolean", ".status.isLogging", "Whether events are delivered."),
        PrinterColumn("Bucket", "string", ".spec.s3.bucket", "The destination bucket."),
        PrinterColumn("Files", "integer", ".status.deliveredFiles", "Log files delivered."),
        PrinterColumn(
            "Last-Delivery", "date", ".status.latestDeliveryTime", "Latest log file delivery."
        ),
        READY_COLUMN,
        AGE_COLUMN,
    ),
)
