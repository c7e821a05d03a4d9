"""PutAuditEvents (CloudTrail Lake integrations): validate a call, normalize each event.

A call is refused whole only for call-level faults (not JSON, no `auditEvents`
list, over 100 events or 1 MB); every other fault fails just its event, with
CloudTrail's error codes, so one bad event never costs the good ones.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any, Final

import orjson

from trail_operator.events.k8s_audit import AuditEventError, parse_event_time
from trail_operator.events.record import (
    CATEGORY_ACTIVITY,
    EVENT_VERSION,
    TYPE_ACTIVITY_LOG,
    Record,
    derived_event_id,
)

MAX_EVENTS: Final = 100
MAX_BODY_BYTES: Final = 1024 * 1024
MAX_ID_LENGTH: Final = 128
MAX_EVENT_DATA_BYTES: Final = 256 * 1024

ERROR_FIELD_TOO_LONG: Final = "FieldTooLong"
ERROR_FIELD_NOT_FOUND: Final = "FieldNotFound"
ERROR_INVALID_CHECKSUM: Final = "InvalidChecksum"
ERROR_INVALID_DATA: Final = "InvalidData"
ERROR_DUPLICATE_ID: Final = "DuplicateId"


class PutAuditEventsError(ValueError):
    """The whole call is refused; `code` is the error code returned to the caller."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True)
class FailedEvent:
    id: str
    error_code: str
    error_message: str

    def as_dict(self) -> dict[str, str]:
        return {"id": self.id, "errorCode": self.error_code, "errorMessage": self.error_message}


@dataclass(frozen=True)
class AcceptedEvent:
    id: str
    record: Record


def parse_call(body: bytes) -> list[Any]:
    """The `auditEvents` list of a call, or PutAuditEventsError for a call-level fault."""
    if len(body) > MAX_BODY_BYTES:
        raise PutAuditEventsError(
            "ValidationException", f"request body is {len(body)} bytes; the limit is 1 MB")
    try:
        payload = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise PutAuditEventsError("ValidationException", f"body is not valid JSON: {exc}") from exc
    if not isinstance(payload, dict) or not isinstance(payload.get("auditEvents"), list):
        raise PutAuditEventsError(
            "ValidationException", "body must be an object with an 'auditEvents' list")
    events: list[Any] = payload["auditEvents"]
    if not events:
        raise PutAuditEventsError("ValidationException", "auditEvents is empty")
    if len(events) > MAX_EVENTS:
        raise PutAuditEventsError(
            "ValidationException",
            f"auditEvents has {len(events)} events; at most {MAX_EVENTS} are allowed per call")
    return events


class ActivityEventNormalizer:
    """Turns PutAuditEvents entries of one channel into records."""

    def __init__(self, cluster_name: str, region: str, namespace: str, channel: str,
                 default_source: str) -> None:
        self.cluster_name = cluster_name
        self.region = region
        self.namespace = namespace
        self.channel = channel
        self.default_source = default_source

    def normalize(self, events: list[Any]) -> tuple[list[AcceptedEvent], list[FailedEvent]]:
        accepted: list[AcceptedEvent] = []
        failed: list[FailedEvent] = []
        seen: set[str] = set()
        for index, entry in enumerate(events):
            outcome = self._one(index, entry, seen)
            if isinstance(outcome, AcceptedEvent):
                accepted.append(outcome)
            else:
                failed.append(outcome)
        return accepted, failed

    def _one(self, index: int, entry: Any, seen: set[str]) -> AcceptedEvent | FailedEvent:
        if not isinstance(entry, dict):
            return FailedEvent(str(index), ERROR_INVALID_DATA,
                               f"auditEvents[{index}] must be an object")
        event_id = entry.get("id")
        if not isinstance(event_id, str) or not event_id:
            return FailedEvent(str(index), ERROR_FIELD_NOT_FOUND,
                               f"auditEvents[{index}].id is missing")
        if len(event_id) > MAX_ID_LENGTH:
            return FailedEvent(event_id[:MAX_ID_LENGTH], ERROR_FIELD_TOO_LONG,
                               f"auditEvents[{index}].id is longer than {MAX_ID_LENGTH} characters")
        if event_id in seen:
            return FailedEvent(event_id, ERROR_DUPLICATE_ID,
                               f"auditEvents[{index}].id {event_id!r} appears twice in this call")
        seen.add(event_id)
        data = entry.get("eventData")
        if not isinstance(data, str) or not data:
            return FailedEvent(event_id, ERROR_FIELD_NOT_FOUND,
                               f"auditEvents[{index}].eventData is missing (a JSON string)")
        if len(data) > MAX_EVENT_DATA_BYTES:
            return FailedEvent(event_id, ERROR_FIELD_TOO_LONG,
                               f"auditEvents[{index}].eventData is over 256 KB")
        checksum = entry.get("eventDataChecksum")
        if checksum is not None and (
            not isinstance(checksum, str)
            or hashlib.sha256(data.encode()).hexdigest() != checksum.lower()
        ):
            return FailedEvent(event_id, ERROR_INVALID_CHECKSUM,
                               f"auditEvents[{index}].eventDataChecksum does not match the "
                               "SHA-256 of eventData")
        try:
            event_data = orjson.loads(data)
        except orjson.JSONDecodeError as exc:
            return FailedEvent(event_id, ERROR_INVALID_DATA,
                               f"auditEvents[{index}].eventData is not valid JSON: {exc}")
        if not isinstance(event_data, dict):
            return FailedEvent(event_id, ERROR_INVALID_DATA,
                               f"auditEvents[{index}].eventData must be a JSON object")
        problem = _missing_fields(event_data)
        if problem:
            return FailedEvent(event_id, ERROR_FIELD_NOT_FOUND,
                               f"auditEvents[{index}].eventData.{problem} is missing")
        try:
            event_time = parse_event_time(event_data["eventTime"], "eventTime")
            _check_types(event_data)
        except AuditEventError as exc:
            return FailedEvent(event_id, ERROR_INVALID_DATA,
                               f"auditEvents[{index}].eventData.{exc.field}: {exc.reason}")
        return AcceptedEvent(event_id, self._record(event_id, event_data, event_time))

    def _record(self, event_id: str, data: dict[str, Any], event_time: str) -> Record:
        """The record of an event whose fields `_check_types` has checked."""
        identity = data["userIdentity"]
        details = identity.get("details")
        username = ""
        if isinstance(details, dict):
            username = str(details.get("username") or details.get("userName") or "")
        principal = identity.get("principalId") or ""
        return {
            "eventID": derived_event_id(self.channel, event_id),
            "eventTime": event_time,
            "eventVersion": data.get("version") or EVENT_VERSION,
            "eventSource": data.get("eventSource") or self.default_source,
            "eventName": data["eventName"],
            "eventType": TYPE_ACTIVITY_LOG,
            "eventCategory": CATEGORY_ACTIVITY,
            "readOnly": data.get("readOnly") is True,
            "managementEvent": False,
            "userIdentity": {
                "type": identity.get("type") or "",
                "principalId": principal,
                "username": username or principal,
            },
            "sourceIPAddress": data.get("sourceIPAddress") or "",
            "userAgent": data.get("userAgent") or "",
            "requestID": data.get("UID") or event_id,
            "requestParameters": data.get("requestParameters"),
            "responseElements": data.get("responseElements"),
            "errorCode": data.get("errorCode"),
            "errorMessage": data.get("errorMessage"),
            "resources": _resources(data.get("resources")),
            "namespace": self.namespace,
            "recipientAccountId": self.cluster_name,
            "awsRegion": self.region,
            "additionalEventData": {
                **(data.get("additionalEventData") or {}),
                "channel": self.channel,
                "sourceEventId": event_id,
                **({"identityDetails": details} if details else {}),
            },
        }


_REQUIRED = ("eventTime", "eventName", "userIdentity")


def _missing_fields(data: dict[str, Any]) -> str | None:
    for field in _REQUIRED:
        if not data.get(field):
            return field
    return None


# Fields of eventData that must have one JSON type when present. The store's
# columns are typed: a value of another type would be refused by the engine
# with the rest of its batch, or stored as something the sender did not mean
# (the string "false" read as true), so it fails its event here instead.
_STRING_FIELDS: Final = ("version", "eventName", "eventSource", "UID", "sourceIPAddress",
                         "userAgent", "errorCode", "errorMessage")
_OBJECT_FIELDS: Final = ("userIdentity", "requestParameters", "responseElements",
                         "additionalEventData")


def _check_types(data: dict[str, Any]) -> None:
    for field in _STRING_FIELDS:
        value = data.get(field)
        if value is not None and not isinstance(value, str):
            raise AuditEventError(field, f"must be a string, not {_json_type(value)}")
    for field in _OBJECT_FIELDS:
        value = data.get(field)
        if value is not None and not isinstance(value, dict):
            raise AuditEventError(field, f"must be a JSON object, not {_json_type(value)}")
    identity = data["userIdentity"]
    for key in ("type", "principalId"):
        value = identity.get(key)
        if value is not None and not isinstance(value, str):
            raise AuditEventError(f"userIdentity.{key}",
                                  f"must be a string, not {_json_type(value)}")
    read_only = data.get("readOnly")
    if read_only is not None and not isinstance(read_only, bool):
        raise AuditEventError("readOnly", f"must be true or false, not {_json_type(read_only)}")
    resources = data.get("resources")
    if resources is not None and not (
            isinstance(resources, list) and all(isinstance(r, dict) for r in resources)):
        raise AuditEventError("resources", "must be a list of JSON objects")


def _json_type(value: object) -> str:
    names = {bool: "a boolean", int: "a number", float: "a number", str: "a string",
             list: "a list", dict: "an object"}
    return names.get(type(value), type(value).__name__)


def _resources(value: list[dict[str, Any]] | None) -> list[dict[str, str]]:
    """Resources of a checked event (a list of objects, or none)."""
    return [{
        "type": str(item.get("type") or item.get("resourceType") or ""),
        "name": str(item.get("name") or item.get("resourceName") or ""),
        "ARN": str(item.get("ARN") or item.get("arn") or ""),
    } for item in value or ()]
