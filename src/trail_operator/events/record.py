"""The one event record every source is normalized to (SPEC.md, "The event record").

Records are plain dicts with CloudTrail's field names: they are built on the
ingest hot path, where a model class per event costs more than the insert
itself, and they serialize straight to ClickHouse's JSONEachRow with orjson.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any, Final

import msgspec

Record = dict[str, Any]

EVENT_VERSION: Final = "1.09"

CATEGORY_MANAGEMENT: Final = "Management"
CATEGORY_DATA: Final = "Data"
CATEGORY_ACTIVITY: Final = "ActivityAuditLog"
CATEGORY_INSIGHT: Final = "Insight"
EVENT_CATEGORIES: Final = (CATEGORY_MANAGEMENT, CATEGORY_DATA, CATEGORY_ACTIVITY, CATEGORY_INSIGHT)

TYPE_KUBERNETES_API_CALL: Final = "KubernetesApiCall"
TYPE_ACTIVITY_LOG: Final = "ActivityLog"
TYPE_INSIGHT: Final = "Insight"

# Every top-level field of a record, in the store's column order.
RECORD_FIELDS: Final = (
    "eventID",
    "eventTime",
    "eventVersion",
    "eventSource",
    "eventName",
    "eventType",
    "eventCategory",
    "readOnly",
    "managementEvent",
    "userIdentity",
    "sourceIPAddress",
    "userAgent",
    "requestID",
    "requestParameters",
    "responseElements",
    "errorCode",
    "errorMessage",
    "resources",
    "namespace",
    "recipientAccountId",
    "awsRegion",
    "additionalEventData",
)


# A record's values in `RECORD_FIELDS` order: what the ingest hot path builds,
# routes and encodes (a 22-key dict per event cost more than the rest of the record).
Row = list[Any]


def record_from_row(row: Row) -> Record:
    return dict(zip(RECORD_FIELDS, row, strict=True))


def row_from_record(record: Record) -> Row:
    """The record's values by column; a field it lacks is None."""
    if tuple(record) == RECORD_FIELDS:  # every field, in order
        return list(record.values())
    return list(map(record.get, RECORD_FIELDS))


class SharedIdentity(dict[str, Any]):
    """A `userIdentity` shared by many records, with its JSON encoded once.

    A plain dict to every reader; `store.rows.encode_values` writes `json` instead
    of encoding the dict again for each record. Never change one.
    """

    __slots__ = ("json",)

    def __init__(self, identity: dict[str, Any]) -> None:
        super().__init__(identity)
        self.json = msgspec.Raw(msgspec.json.encode(identity))


# Namespace of deterministic event IDs derived from a source's own id, so a
# retried delivery maps to the same eventID and is deduplicated by the store.
EVENT_ID_NAMESPACE: Final = uuid.UUID("6f1c3a52-5e0b-4c38-9a55-1b7f0c2d9e41")


def derived_event_id(*parts: str) -> str:
    """A stable eventID for an event identified by `parts` (e.g. channel and source id)."""
    return str(uuid.uuid5(EVENT_ID_NAMESPACE, "\x1f".join(parts)))


def format_event_time(moment: datetime) -> str:
    """CloudTrail's eventTime: UTC with millisecond precision, `Z` suffix."""
    utc = moment.astimezone(UTC)
    return utc.strftime("%Y-%m-%dT%H:%M:%S.") + f"{utc.microsecond // 1000:03d}Z"
