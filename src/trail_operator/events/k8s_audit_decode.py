"""Well-formed audit EventLists decoded straight into records: the ingest fast path.

`AuditEventNormalizer.normalize_list` (k8s_audit.py) is the reference: it takes
any parsed JSON and says which item and field were wrong. It is also the
gateway's most expensive step: parsing builds a dict for every object of every
event, request bodies included, only for most of them to be encoded back to
JSON and freed. This module decodes an EventList with msgspec into typed
structs instead: unknown fields are skipped without being built, request and
response bodies and annotations stay raw JSON (`msgspec.Raw`) and go into the
row as they came, and the types are checked by the decoder. Parse, normalize,
route and encode went from ~23 to ~15 µs per event (captured event shapes), and
to ~10-12 µs with rows instead of dicts and bodies judged by their kind alone.

The fast path only takes what it normalizes exactly as the reference does,
and hands everything else to it, so there is one behaviour:
- a body that does not decode into the structs (malformed JSON, a wrong type
  anywhere, a null where a string belongs) goes to the reference whole, which
  keeps the good events and names the bad ones;
- an event the fast path declines (empty audit ID or verb, a time that does
  not parse, a body whose metadata is odd) is normalized by the reference,
  from the same body parsed once with orjson;
- bodies that may hold secret values (any body of a request to core
  `secrets`, or one whose top-level kind is sensitive) are parsed and redacted
  by the reference's own `redact`; an impersonator is checked by its
  `checked_principal`.
Both paths build records with `AuditEventNormalizer.row` (the fast path keeps
them as rows: values in column order); tests check that they give the same
rows and rejections for captured and damaged events.
"""

from __future__ import annotations

from typing import Any, Final, TypeVar

import msgspec
import orjson
from msgspec import Raw, Struct

from trail_operator.events.k8s_audit import (
    AUDIT_API_VERSION,
    AUDIT_LIST_KIND,
    SENSITIVE_KINDS,
    AuditEventNormalizer,
    AuditRejection,
    Principal,
    checked_principal,
    metadata_str,
    parse_event_time,
    redact,
)
from trail_operator.events.k8s_names import http_error_code
from trail_operator.events.record import Row, row_from_record

_NO_BODY: Final = Raw()


class _User(Struct, gc=False):
    username: str = ""
    uid: str = ""
    groups: list[str] = []
    extra: dict[str, list[str]] = {}


class _ObjectRef(Struct, gc=False):
    resource: str = ""
    namespace: str = ""
    name: str = ""
    apiGroup: str = ""
    subresource: str = ""
    uid: str = ""


class _StatusDetails(Struct, gc=False):
    name: str | None = None
    uid: str | None = None


class _Status(Struct, gc=False):
    code: int | None = None
    reason: str = ""
    message: str = ""
    details: _StatusDetails | None = None


class _Event(Struct, gc=False):
    stage: str = ""
    auditID: str = ""
    verb: str = ""
    level: Any = None
    requestURI: str = ""
    # Kept raw: a cluster's events come from few users, whose identities are
    # cached by this JSON text (decoding it was a tenth of the parse).
    user: Raw = _NO_BODY
    # Rare: decoded as plain JSON and checked by the reference's own function.
    impersonatedUser: Any = None
    sourceIPs: list[str] = []
    userAgent: str = ""
    objectRef: _ObjectRef | None = None
    responseStatus: _Status | None = None
    requestObject: Raw = _NO_BODY
    responseObject: Raw = _NO_BODY
    requestReceivedTimestamp: str | None = None
    stageTimestamp: str | None = None
    # Kept raw: present on nearly every event and only copied into the record.
    annotations: Raw = _NO_BODY


class _ListHead(Struct, gc=False):
    kind: str = ""
    apiVersion: str = ""


class _EventList(_ListHead, gc=False):
    items: list[_Event] = []


class _EventListOfRaw(_ListHead, gc=False):
    items: list[Raw] = []


_List = TypeVar("_List", bound=_ListHead)


def _event_list(decoder: msgspec.json.Decoder[_List], body: bytes) -> _List | None:
    """The body decoded, if it is an `audit.k8s.io/v1` EventList that fits the structs."""
    try:
        decoded = decoder.decode(body)
    except (msgspec.DecodeError, msgspec.ValidationError):
        return None
    if decoded.kind != AUDIT_LIST_KIND or decoded.apiVersion != AUDIT_API_VERSION:
        return None
    return decoded


class _Metadata(Struct, gc=False):
    name: str = ""
    uid: str = ""


class _Object(Struct, gc=False):
    metadata: _Metadata | None = None


class _Kind(Struct, gc=False):
    kind: object = None


_LIST_DECODER: Final = msgspec.json.Decoder(_EventList)
_LIST_OF_RAW_DECODER: Final = msgspec.json.Decoder(_EventListOfRaw)
_EVENT_DECODER: Final = msgspec.json.Decoder(_Event)
_USER_DECODER: Final = msgspec.json.Decoder(_User | None)
_KIND_DECODER: Final = msgspec.json.Decoder(_Kind)
_OBJECT_DECODER: Final = msgspec.json.Decoder(_Object)


class _NeedsReference(Exception):
    """This event is normalized by the reference normalizer."""


# Bodies larger than this are decoded an event at a time. Decoded whole, a list
# of 1,000 events (~0.9 MB) makes every event's structs before the first is
# normalized, and that outgrows the CPU's caches: ~13.7 us per event against ~9.3
# in lists of 100. An event at a time costs a scan of the list and a decoder call
# per event (~1 us), which small bodies would pay for nothing.
ITEM_BY_ITEM_BYTES: Final = 256 * 1024


def decode_event_list(
    normalizer: AuditEventNormalizer, body: bytes, by_item: bool | None = None
) -> tuple[int, list[Row], list[AuditRejection]] | None:
    """(items received, records as rows, rejections) of an EventList body; None for
    the reference.

    None means the body is not a well-formed `audit.k8s.io/v1` EventList in
    every detail; `normalize_list` must then judge it whole. `by_item` chooses
    how it is decoded (the same results either way); by default, by its size.
    """
    if by_item is None:
        by_item = len(body) > ITEM_BY_ITEM_BYTES
    if by_item:
        return _decode_by_item(normalizer, body)
    decoded = _event_list(_LIST_DECODER, body)
    if decoded is None:
        return None
    rows: list[Row] = []
    rejections: list[AuditRejection] = []
    reference_items: list[Any] | None = None
    for index, event in enumerate(decoded.items):
        try:
            row = _normalize(normalizer, event)
        except Exception:  # anything unusual is judged by the reference
            if reference_items is None:
                reference_items = orjson.loads(body)["items"]
            _by_reference(normalizer, index, reference_items[index], rows, rejections)
            continue
        if row is not None:
            rows.append(row)
    return len(decoded.items), rows, rejections


def _decode_by_item(
    normalizer: AuditEventNormalizer, body: bytes
) -> tuple[int, list[Row], list[AuditRejection]] | None:
    """`decode_event_list` for large bodies: each event decoded and normalized in turn.

    An event that does not decode into the structs goes to the reference alone:
    the reference judges a body's items one by one, so that is what it would say.
    """
    decoded = _event_list(_LIST_OF_RAW_DECODER, body)
    if decoded is None:
        return None
    rows: list[Row] = []
    rejections: list[AuditRejection] = []
    for index, item in enumerate(decoded.items):
        try:
            row = _normalize(normalizer, _EVENT_DECODER.decode(item))
        except Exception:  # a wrong type, or anything unusual: judged by the reference
            _by_reference(normalizer, index, orjson.loads(bytes(item)), rows, rejections)
            continue
        if row is not None:
            rows.append(row)
    return len(decoded.items), rows, rejections


def _by_reference(normalizer: AuditEventNormalizer, index: int, item: object,
                  rows: list[Row], rejections: list[AuditRejection]) -> None:
    """Item `index`, parsed as plain JSON, normalized by the reference."""
    result = normalizer.normalize_item(index, item)
    if type(result) is AuditRejection:
        rejections.append(result)
    elif result is not None:
        rows.append(row_from_record(result))  # type: ignore[arg-type]


def _normalize(normalizer: AuditEventNormalizer, event: _Event) -> Row | None:
    stage = event.stage
    if stage != "ResponseComplete" and stage != "Panic":
        if not stage:
            raise _NeedsReference
        return None
    audit_id = event.auditID
    verb = event.verb
    if not audit_id or not verb:
        raise _NeedsReference
    received = event.requestReceivedTimestamp
    if received is not None:
        event_time = parse_event_time(received, "requestReceivedTimestamp")
    else:
        received = event.stageTimestamp
        if received is None:
            raise _NeedsReference
        event_time = parse_event_time(received, "stageTimestamp")
    uri = event.requestURI

    ref = event.objectRef
    resource = ref.resource if ref is not None else ""
    if ref is not None and resource:
        group = ref.apiGroup
        subresource = ref.subresource
        route = normalizer.resource_route(verb, group, resource, subresource)
        namespace = ref.namespace
        name = ref.name
        uid = ref.uid
    else:
        route, (group, resource, subresource, namespace, name) = normalizer.uri_route(verb, uri)
        uid = ""

    # Any body of a request to core `secrets` is Secret content, whatever its shape.
    secret_context = resource == "secrets" and not group
    request_object = _body(event.requestObject, secret_context)
    response_object = _body(event.responseObject, secret_context)

    status = event.responseStatus
    if route[4]:
        if not name and verb == "create" and not subresource:
            name = _metadata(response_object).name or _metadata(request_object).name
        if not uid and subresource in ("", "status", "scale"):
            # Most policies log no response bodies: skip reading metadata of none.
            uid = _metadata(response_object).uid if response_object is not None else ""
            if not uid and status is not None:
                details = status.details
                if details is not None and details.name == name and details.uid is not None:
                    uid = details.uid

    code = error_code = error_message = None
    if status is not None:
        code = status.code
        if code is not None and code >= 400:
            error_code = status.reason or http_error_code(code)
            error_message = status.message or None

    impersonated = event.impersonatedUser
    if impersonated:
        identity = normalizer.user_identity(
            *checked_principal(impersonated, "impersonatedUser"),
            impersonator=_principal(event.user))
    else:
        identity = normalizer.identity_of_text(bytes(event.user), _principal)
    source_ips = event.sourceIPs
    return normalizer.row(
        audit_id, received, event_time, route, identity,
        source_ips[0] if source_ips else "", event.userAgent, request_object, response_object,
        (group, namespace, name, uid), code, error_code, error_message, event.level, stage,
        uri, _annotations(event.annotations))


def _principal(user: Raw | bytes) -> Principal:
    """(username, uid, groups, extra) of an audit user kept raw; none for none."""
    try:
        decoded = _USER_DECODER.decode(user) if user else None
    except (msgspec.DecodeError, msgspec.ValidationError):
        raise _NeedsReference from None
    if decoded is None:
        return "", "", [], {}
    return decoded.username, decoded.uid, decoded.groups, decoded.extra


def _body(body: Raw, secret_context: bool) -> object:
    """The body as it came (raw), None for none, or parsed and redacted as the reference does."""
    if not body:
        return None
    if not secret_context:
        # Outside requests to secrets, `redact` looks only at an object's top-level
        # kind: read just that (skipping the rest costs less than searching the text).
        try:
            kind = _KIND_DECODER.decode(body).kind
        except (msgspec.DecodeError, msgspec.ValidationError):
            pass  # not an object: null, or a value `redact` leaves as it is
        else:
            if type(kind) is str and kind in SENSITIVE_KINDS:
                return redact(orjson.loads(bytes(body)), False)
            return body
    data = bytes(body)
    if data == b"null":
        return None
    return redact(orjson.loads(data), True) if secret_context else body


def _annotations(raw: Raw) -> Raw | None:
    """The annotations object as it came; None for none or an empty one (as the reference)."""
    if not raw:
        return None
    data = bytes(raw)
    if data[:1] != b"{":
        # null is no annotations; anything else that is not an object is refused.
        if data == b"null":
            return None
        raise _NeedsReference
    # `{}` with any spacing is empty: stripping braces and spaces leaves nothing.
    return raw if data.strip(b"{} \t\r\n") else None


def _metadata(body: object) -> _Metadata:
    if type(body) is not Raw:
        # None, or a body parsed to be redacted.
        return _Metadata(metadata_str(body, "name"), metadata_str(body, "uid"))
    try:
        metadata = _OBJECT_DECODER.decode(body).metadata
    except (msgspec.DecodeError, msgspec.ValidationError):
        raise _NeedsReference from None
    return metadata if metadata is not None else _Metadata()
