"""Kubernetes audit events (`audit.k8s.io/v1`) -> event records.

The kube-apiserver's audit webhook posts `EventList` batches; each request it
served appears once per stage, and only the final stage (`ResponseComplete`,
or `Panic`) becomes a record, so a request is one record whose `eventID` is
its audit ID.

Why it looks the way it does:
- It is the ingest hot path (tens of thousands of events per second in one
  process), so records are plain dicts, the parts that depend only on the
  request's shape (eventName, source, category, read-only) are computed once
  per (verb, group, resource, subresource) and cached, request and response
  objects are passed through without copying, and the only copies made are of
  the few objects that must be redacted.
- Secret values never reach a record: Secret objects (and lists, tables and
  patch bodies of them) keep their keys but lose their values, and so do
  bearer tokens in TokenReview/TokenRequest bodies. The shipped audit policy
  already logs those resources at `Metadata` level; this is the second line
  for clusters that run their own policy.
- One malformed event must not sink its batch: `normalize_list` turns
  per-item problems into `AuditRejection`s that name the field, and keeps the
  rest. Values that would break a typed store column are rejected here, where
  the message can still say which item and field were wrong.
- Client-chosen audit IDs: the API server accepts an `Audit-ID` request header
  as the audit ID, as is. A UUID is used as the eventID; anything else gets a
  deterministic UUID derived from it (`requestID` keeps the original).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final, TypeVar

from trail_operator.events.k8s_names import (
    ResourcePath,
    Route,
    http_error_code,
    non_resource_route,
    parse_resource_path,
    resource_route,
)
from trail_operator.events.record import (
    CATEGORY_MANAGEMENT,
    EVENT_VERSION,
    TYPE_KUBERNETES_API_CALL,
    Record,
    Row,
    SharedIdentity,
    derived_event_id,
    format_event_time,
    record_from_row,
)

AUDIT_API_VERSION: Final = "audit.k8s.io/v1"
AUDIT_LIST_KIND: Final = "EventList"
FINAL_STAGES: Final = frozenset({"ResponseComplete", "Panic"})
REDACTED: Final = "<redacted>"
LAST_APPLIED_ANNOTATION: Final = "kubectl.kubernetes.io/last-applied-configuration"

IDENTITY_SERVICE_ACCOUNT: Final = "ServiceAccount"
IDENTITY_NODE: Final = "Node"
IDENTITY_SYSTEM: Final = "System"
IDENTITY_ANONYMOUS: Final = "Anonymous"
IDENTITY_USER: Final = "User"
# An event without a username: a request that failed authentication.
IDENTITY_UNKNOWN: Final = "Unknown"

# Caches are keyed by request shape; the shapes a cluster uses number in the
# hundreds, but resource names and paths are caller-chosen (a request for a
# resource that does not exist is still audited, even unauthenticated), so
# the caches are bounded in entries and in key size.
_CACHE_LIMIT: Final = 4096
# Users whose JSON text is longer are decoded each time (and not kept).
_CACHEABLE_USER_TEXT: Final = 2048
_CACHEABLE_KEY_LENGTH: Final = 512
# Kinds whose bodies may carry secret values whatever the request addressed
# (a generic List may hold Secrets), and the list kinds to look into.
SENSITIVE_KINDS: Final = frozenset({"Secret", "SecretList", "List", "TokenReview", "TokenRequest"})
_LIST_KINDS: Final = frozenset({"SecretList", "List", "PartialObjectMetadataList"})
_NO_RESOURCE_PATH: Final = ResourcePath("", "", "", "", "")


# (username, uid, groups, extra) of an audit UserInfo.
Principal = tuple[str, str, list[str], dict[str, list[str]]]


class AuditPayloadError(ValueError):
    """The webhook body is not an `audit.k8s.io/v1` `EventList`."""


class AuditEventError(ValueError):
    """One audit event cannot become a record; `field` names the culprit."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason


@dataclass(frozen=True, slots=True)
class AuditRejection:
    """An item of an EventList that was not normalized, and why."""

    index: int
    audit_id: str | None
    # Names the item and the field, e.g. `items[3].verb: missing`.
    reason: str


class AuditEventNormalizer:
    """Turns the audit events of one cluster into records.

    Holds only caches of pure functions (and of the identities they built):
    one instance per cluster can be shared by every request handler of a
    process (no locking needed; a lost cache insert is only recomputed).
    """

    __slots__ = ("_cluster", "_identities", "_path_routes", "_region", "_routes",
                 "_text_identities")

    def __init__(self, cluster_name: str, region: str) -> None:
        self._cluster = cluster_name
        self._region = region
        self._routes: dict[tuple[str, str, str, str], Route] = {}
        self._path_routes: dict[tuple[str, str], tuple[Route, ResourcePath]] = {}
        self._identities: dict[tuple[str, ...], SharedIdentity] = {}
        self._text_identities: dict[bytes, SharedIdentity] = {}

    def normalize_list(self, body: object) -> tuple[list[Record], list[AuditRejection]]:
        """Records for the final-stage events of an EventList, and the items refused.

        Raises AuditPayloadError when the body as a whole is not an EventList.
        """
        if type(body) is not dict:
            raise AuditPayloadError(
                f"expected an {AUDIT_API_VERSION} {AUDIT_LIST_KIND} object,"
                f" got {_type_name(body)}"
            )
        kind, api_version = body.get("kind"), body.get("apiVersion")
        if kind != AUDIT_LIST_KIND or api_version != AUDIT_API_VERSION:
            raise AuditPayloadError(
                f"expected kind {AUDIT_LIST_KIND} and apiVersion {AUDIT_API_VERSION},"
                f" got kind {kind!r} and apiVersion {api_version!r}; configure the"
                " kube-apiserver with --audit-webhook-version=audit.k8s.io/v1"
            )
        items = body.get("items")
        if items is None:
            return [], []
        if type(items) is not list:
            raise AuditPayloadError(f"items: must be a list, got {_type_name(items)}")
        records: list[Record] = []
        rejections: list[AuditRejection] = []
        for index, item in enumerate(items):
            result = self.normalize_item(index, item)
            if type(result) is AuditRejection:
                rejections.append(result)
            elif result is not None:
                records.append(result)  # type: ignore[arg-type]
        return records, rejections

    def normalize_item(self, index: int, item: object) -> Record | AuditRejection | None:
        """`items[index]` of an EventList: its record, why it was refused, or None (not final)."""
        if type(item) is not dict:
            return AuditRejection(
                index, None, f"items[{index}]: must be an object, got {_type_name(item)}"
            )
        try:
            return self.normalize(item)
        except AuditEventError as error:
            reason = f"items[{index}].{error.field}: {error.reason}"
        except (TypeError, AttributeError, KeyError, ValueError) as error:
            # Shapes no check anticipated: refuse the item, not the batch.
            reason = f"items[{index}]: malformed event ({type(error).__name__}: {error})"
        audit_id = item.get("auditID")
        if type(audit_id) is not str or not audit_id:
            audit_id = None
        return AuditRejection(index, audit_id, reason)

    def normalize(self, event: dict[str, Any]) -> Record | None:
        """The record for one audit event; None for a stage that is not final.

        Raises AuditEventError naming the field when the event cannot be stored.
        Does not modify `event`; the record shares its unredacted sub-objects.
        """
        stage = event.get("stage")
        if stage != "ResponseComplete" and stage != "Panic":
            if type(stage) is not str:
                raise AuditEventError("stage", _expected(stage, "a string"))
            return None
        audit_id = event.get("auditID")
        if type(audit_id) is not str or not audit_id:
            raise AuditEventError("auditID", _expected(audit_id, "a non-empty string"))
        verb = event.get("verb")
        if type(verb) is not str or not verb:
            raise AuditEventError("verb", _expected(verb, "a non-empty string"))
        received = event.get("requestReceivedTimestamp")
        if received is not None:
            event_time = parse_event_time(received, "requestReceivedTimestamp")
        else:
            received = event.get("stageTimestamp")
            if received is None:
                raise AuditEventError(
                    "requestReceivedTimestamp", "missing (and no stageTimestamp either)"
                )
            event_time = parse_event_time(received, "stageTimestamp")
        uri = event.get("requestURI")
        if uri is None:
            uri = ""
        elif type(uri) is not str:
            raise AuditEventError("requestURI", _expected(uri, "a string"))

        ref = event.get("objectRef")
        if ref is not None and type(ref) is not dict:
            raise AuditEventError("objectRef", _expected(ref, "an object"))
        resource = ref.get("resource") if ref else None
        if resource:
            assert ref is not None
            group = ref.get("apiGroup") or ""
            subresource = ref.get("subresource") or ""
            route = self.resource_route(verb, group, resource, subresource)
            namespace = ref.get("namespace") or ""
            name = ref.get("name") or ""
            uid = ref.get("uid") or ""
            if type(namespace) is not str:
                raise AuditEventError("objectRef.namespace", _expected(namespace, "a string"))
            if type(name) is not str:
                raise AuditEventError("objectRef.name", _expected(name, "a string"))
            if type(uid) is not str:
                raise AuditEventError("objectRef.uid", _expected(uid, "a string"))
        else:
            route, (group, resource, subresource, namespace, name) = self.uri_route(verb, uri)
            uid = ""
        resource_type = route[4]

        request_object = event.get("requestObject")
        response_object = event.get("responseObject")
        # Any body of a request to core `secrets` is Secret content, whatever its shape.
        secret_context = resource == "secrets" and not group
        if request_object is not None:
            request_object = redact(request_object, secret_context)
        if response_object is not None:
            response_object = redact(response_object, secret_context)

        if resource_type:
            if not name and verb == "create" and not subresource:
                # Creates address a collection; the object's name is in the body.
                name = metadata_str(response_object, "name") or metadata_str(
                    request_object, "name"
                )
            if not uid and subresource in ("", "status", "scale"):
                uid = metadata_str(response_object, "uid") or _deleted_uid(event, name)

        status = event.get("responseStatus")
        code: Any = None
        error_code = error_message = None
        if status is not None:
            if type(status) is not dict:
                raise AuditEventError("responseStatus", _expected(status, "an object"))
            code = status.get("code")
            if code is not None and type(code) is not int:
                raise AuditEventError("responseStatus.code", _expected(code, "an integer"))
            if code is not None and code >= 400:
                reason = status.get("reason")
                error_code = reason if reason and type(reason) is str else http_error_code(code)
                message = status.get("message")
                error_message = message if type(message) is str and message else None

        annotations = event.get("annotations")
        if annotations and type(annotations) is not dict:
            raise AuditEventError("annotations", _expected(annotations, "an object"))

        source_ips = event.get("sourceIPs")
        if source_ips:
            if type(source_ips) is not list or type(source_ips[0]) is not str:
                raise AuditEventError("sourceIPs", _expected(source_ips, "a list of strings"))
            source_ip = source_ips[0]
        else:
            source_ip = ""
        user_agent = event.get("userAgent") or ""
        if type(user_agent) is not str:
            raise AuditEventError("userAgent", _expected(user_agent, "a string"))

        impersonated = event.get("impersonatedUser")
        if impersonated:
            identity = self.user_identity(
                *checked_principal(impersonated, "impersonatedUser"),
                impersonator=checked_principal(event.get("user"), "user"))
        else:
            identity = self.user_identity(*checked_principal(event.get("user"), "user"))

        return record_from_row(self.row(
            audit_id, received, event_time, route, identity, source_ip, user_agent,
            request_object, response_object, (group, namespace, name, uid),
            code, error_code, error_message, event.get("level"), stage, uri, annotations))

    def user_identity(self, username: str, uid: str, groups: list[str],
                      extra: dict[str, list[str]],
                      impersonator: Principal | None = None) -> dict[str, Any]:
        """The record's `userIdentity`; shared between records of the same plain identity.

        A cluster's requests come from a few hundred identities, so the common
        case (no impersonation, no extra) is built, classified and encoded once
        (`SharedIdentity`): records are never changed once made.
        """
        key = None
        if impersonator is None and not extra:
            key = (username, uid, *groups)
            cached = self._identities.get(key)
            if cached is not None:
                return cached
        identity = {
            "type": identity_type(username),
            "principalId": uid or username,
            "accountId": self._cluster,
            "username": username,
            "uid": uid,
            "groups": groups,
            "extra": extra,
            "impersonatedBy": None if impersonator is None else {
                "username": impersonator[0], "uid": impersonator[1], "groups": impersonator[2]},
        }
        if key is not None and sum(map(len, key)) <= _CACHEABLE_KEY_LENGTH:
            return _remember(self._identities, key, SharedIdentity(identity))
        return identity

    def identity_of_text(self, text: bytes,
                         principal: Callable[[bytes], Principal]) -> dict[str, Any]:
        """`user_identity` of a user who impersonates nobody, given as JSON text;
        shared by every record whose user has the same text.

        For the fast decoder (`k8s_audit_decode`), which keeps users raw:
        `principal` decodes the text on a cache miss. Identities with `extra`
        (service-account tokens) are shared here too: the text is the key, so
        there is no key to build from them.
        """
        if len(text) > _CACHEABLE_USER_TEXT:  # never cached: not worth hashing either
            return self.user_identity(*principal(text))
        cached = self._text_identities.get(text)
        if cached is not None:
            return cached
        identity = self.user_identity(*principal(text))
        if type(identity) is not SharedIdentity:
            identity = SharedIdentity(identity)
        return _remember(self._text_identities, text, identity)

    def row(
        self, audit_id: str, received: str, event_time: str, route: Route,
        identity: dict[str, Any], source_ip: str, user_agent: str,
        request_object: object, response_object: object,
        resource: tuple[str, str, str, str], code: int | None, error_code: str | None,
        error_message: str | None, level: object, stage: str, uri: str, annotations: object,
        /,
    ) -> Row:
        """The record of one final-stage event, as its values in column order
        (`RECORD_FIELDS`), from values already checked.

        Shared by this normalizer and the decoder of well-formed EventLists
        (`k8s_audit_decode`), so both build exactly the same records.
        Positional only: with 17 keywords the call cost more than building the record.
        """
        event_name, event_source, category, read_only, resource_type = route
        if resource_type:
            group, namespace, name, uid = resource
            resources = [
                {
                    "type": resource_type,
                    "name": name,
                    "namespace": namespace,
                    "apiGroup": group,
                    "uid": uid,
                }
            ]
        else:
            namespace = resource[1]
            resources = []
        additional: dict[str, Any] = {"auditLevel": level, "stage": stage, "requestURI": uri}
        if code is not None:
            additional["responseCode"] = code
        if annotations:
            additional["annotations"] = annotations
        return [  # RECORD_FIELDS order
            self._event_id(audit_id, received),  # eventID
            event_time,  # eventTime
            EVENT_VERSION,  # eventVersion
            event_source,  # eventSource
            event_name,  # eventName
            TYPE_KUBERNETES_API_CALL,  # eventType
            category,  # eventCategory
            read_only,  # readOnly
            category == CATEGORY_MANAGEMENT,  # managementEvent
            identity,  # userIdentity
            source_ip,  # sourceIPAddress
            user_agent,  # userAgent
            audit_id,  # requestID
            request_object,  # requestParameters
            response_object,  # responseElements
            error_code,  # errorCode
            error_message,  # errorMessage
            resources,  # resources
            namespace,  # namespace
            self._cluster,  # recipientAccountId
            self._region,  # awsRegion
            additional,  # additionalEventData
        ]

    def resource_route(self, verb: str, group: object, resource: object, sub: object) -> Route:
        """eventName, source, category, readOnly and resource type of a request shape."""
        key: Any = (verb, group, resource, sub)  # strings when well-formed
        try:
            route = self._routes.get(key)
        except TypeError:  # an unhashable value where a string belongs
            route = None
        return route if route is not None else self._resource_route(verb, group, resource, sub)

    def _resource_route(self, verb: str, group: object, resource: object, sub: object) -> Route:
        # Cache miss: the only place the key's types are checked, since a cached
        # key is made of strings and a non-string can never equal one.
        for field, value in (
            ("objectRef.apiGroup", group),
            ("objectRef.resource", resource),
            ("objectRef.subresource", sub),
        ):
            if type(value) is not str:
                raise AuditEventError(field, _expected(value, "a string"))
        assert isinstance(group, str)
        assert isinstance(resource, str)
        assert isinstance(sub, str)
        key = (verb, group, resource, sub)
        route = resource_route(verb, group, resource, sub)
        if len(verb) + len(group) + len(resource) + len(sub) <= _CACHEABLE_KEY_LENGTH:
            _remember(self._routes, key, route)
        return route

    def uri_route(self, verb: str, uri: str) -> tuple[Route, ResourcePath]:
        """The route of a request without an objectRef, and the resource its path
        names (all empty for a non-resource URL); cached."""
        path = uri.partition("?")[0]
        cached = self._path_routes.get((verb, path))
        if cached is None:
            parsed = parse_resource_path(path)
            if parsed is None:
                cached = (non_resource_route(verb, path), _NO_RESOURCE_PATH)
            else:
                cached = (resource_route(
                    verb, parsed.api_group, parsed.resource, parsed.subresource), parsed)
            if len(verb) + len(path) <= _CACHEABLE_KEY_LENGTH:
                _remember(self._path_routes, (verb, path), cached)
        return cached

    def _event_id(self, audit_id: str, received: str) -> str:
        if _is_uuid(audit_id):
            return audit_id.lower()
        return derived_event_id("k8s-audit", self._cluster, audit_id, received)


def _is_uuid(text: str) -> bool:
    """Whether `text` is a UUID in its 8-4-4-4-12 hex form, either case.

    Not a regex: this runs for every event, and `bytes.fromhex` took ~540 ns
    where the regex took ~930. With the hyphens in place, 16 bytes come out only
    if the other 32 characters are all hex digits (any other character fails or
    leaves an odd count).
    """
    if len(text) != 36 or not text[8] == text[13] == text[18] == text[23] == "-":
        return False
    try:
        return len(bytes.fromhex(text.replace("-", ""))) == 16
    except ValueError:
        return False


def identity_type(username: str) -> str:
    """CloudTrail's `userIdentity.type`, from the Kubernetes username conventions."""
    if username.startswith("system:"):
        if username.startswith("system:serviceaccount:"):
            return IDENTITY_SERVICE_ACCOUNT
        if username.startswith("system:node:"):
            return IDENTITY_NODE
        if username == "system:anonymous":
            return IDENTITY_ANONYMOUS
        return IDENTITY_SYSTEM
    return IDENTITY_USER if username else IDENTITY_UNKNOWN


def checked_principal(user: object, field: str) -> Principal:
    """(username, uid, groups, extra) of an audit UserInfo, type-checked."""
    if user is None:
        return "", "", [], {}
    if type(user) is not dict:
        raise AuditEventError(field, _expected(user, "an object"))
    username = user.get("username") or ""
    if type(username) is not str:
        raise AuditEventError(f"{field}.username", _expected(username, "a string"))
    uid = user.get("uid") or ""
    if type(uid) is not str:
        raise AuditEventError(f"{field}.uid", _expected(uid, "a string"))
    groups = user.get("groups") or []
    if type(groups) is not list:
        raise AuditEventError(f"{field}.groups", _expected(groups, "a list of strings"))
    for group in groups:
        if type(group) is not str:
            raise AuditEventError(f"{field}.groups", _expected(group, "a list of strings"))
    extra = user.get("extra") or {}
    if extra:
        if type(extra) is not dict:
            raise AuditEventError(f"{field}.extra", _expected(extra, "a map of string lists"))
        for key, values in extra.items():
            if type(values) is not list or not all(type(value) is str for value in values):
                raise AuditEventError(f"{field}.extra.{key}", _expected(values, "a string list"))
    return username, uid, groups, extra


_K = TypeVar("_K")
_V = TypeVar("_V")


def _remember(cache: dict[_K, _V], key: _K, value: _V) -> _V:
    """Cache `value`; a full cache starts over (a cleared entry is only recomputed)."""
    if len(cache) >= _CACHE_LIMIT:
        cache.clear()
    cache[key] = value
    return value


# Seconds (`2006-01-02T15:04:05`) of MicroTimes that parsed: the events of a
# batch share a few, and checking the digits of a fraction is cheaper than parsing.
_VALID_SECONDS: Final[dict[str, bool]] = {}


def parse_event_time(value: object, field: str) -> str:
    """CloudTrail's eventTime (UTC, milliseconds, `Z`) from an RFC 3339 time."""
    if type(value) is not str:
        raise AuditEventError(field, _expected(value, "an RFC 3339 time string"))
    # The API server's MicroTime, `2006-01-02T15:04:05.000000Z`: already UTC,
    # so slicing is exact, and several times faster than formatting.
    micro_time = len(value) == 27 and value[26] == "Z" and value[19] == "."
    if micro_time and value[:19] in _VALID_SECONDS:
        fraction = value[20:26]
        if fraction.isascii() and fraction.isdigit():
            return value[:23] + "Z"
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise AuditEventError(field, f"not an RFC 3339 time: {value[:64]!r}") from None
    if micro_time and value[10] == "T":
        _remember(_VALID_SECONDS, value[:19], True)
        return value[:23] + "Z"
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return format_event_time(moment)


def metadata_str(obj: object, key: str) -> str:
    if type(obj) is dict:
        metadata = obj.get("metadata")
        if type(metadata) is dict:
            value = metadata.get(key)
            if type(value) is str:
                return value
    return ""


def _deleted_uid(event: dict[str, Any], name: str) -> str:
    # A delete answers with a Status whose details name the deleted object,
    # at every audit level (responseStatus is always logged).
    status = event.get("responseStatus")
    if type(status) is dict:
        details = status.get("details")
        if type(details) is dict and details.get("name") == name:
            uid = details.get("uid")
            if type(uid) is str:
                return uid
    return ""


def redact(obj: object, secret_context: bool) -> object:
    """`obj` with secret values replaced, or `obj` itself when it holds none.

    `secret_context` is set when the request addressed core `secrets`: every
    object in the body is then Secret content, including those without a
    `kind` (merge and strategic-merge patches), JSON patches, and the
    metadata-only objects of tables and PartialObjectMetadataLists (their
    last-applied annotation holds the whole Secret).
    """
    if type(obj) is dict:
        kind = obj.get("kind")
        if type(kind) is not str:
            kind = None  # not a kind at all (and a list here is unhashable)
        if not secret_context and kind not in SENSITIVE_KINDS:
            return obj
        if kind in _LIST_KINDS:
            items = obj.get("items")
            if type(items) is not list:
                return obj
            # SecretList items carry no `kind`; a generic List's items do.
            item_context = secret_context or kind == "SecretList"
            redacted_items = [redact(item, item_context) for item in items]
            if all(new is old for new, old in zip(redacted_items, items, strict=True)):
                return obj
            return {**obj, "items": redacted_items}
        if kind == "Table":
            rows = obj.get("rows")
            if type(rows) is not list:
                return obj
            return {**obj, "rows": [_redact_table_row(row) for row in rows]}
        if kind == "TokenReview":
            return _redact_token(obj, "spec")
        if kind == "TokenRequest":
            return _redact_token(obj, "status")
        return _redact_secret(obj)
    if type(obj) is list and secret_context:
        return [_redact_json_patch_operation(operation) for operation in obj]
    return obj


def _redact_secret(secret: dict[str, Any]) -> dict[str, Any]:
    redacted = dict(secret)
    for key in ("data", "stringData"):
        values = redacted.get(key)
        if type(values) is dict:
            # A null value in a patch deletes a key: worth keeping visible.
            redacted[key] = {k: None if v is None else REDACTED for k, v in values.items()}
        elif values is not None:
            redacted[key] = REDACTED
    metadata = redacted.get("metadata")
    if type(metadata) is dict:
        redacted["metadata"] = _redact_secret_metadata(metadata)
    return redacted


def _redact_secret_metadata(metadata: dict[str, Any]) -> dict[str, Any]:
    # kubectl's last-applied annotation is the whole Secret as JSON, values included.
    annotations = metadata.get("annotations")
    if type(annotations) is dict and annotations.get(LAST_APPLIED_ANNOTATION) is not None:
        return {**metadata, "annotations": {**annotations, LAST_APPLIED_ANNOTATION: REDACTED}}
    return metadata


def _redact_table_row(row: object) -> object:
    # Only reached for tables of Secrets (other tables hold no secret values).
    if type(row) is dict and row.get("object") is not None:
        return {**row, "object": redact(row["object"], True)}
    return row


def _redact_token(obj: dict[str, Any], section: str) -> dict[str, Any]:
    part = obj.get(section)
    if type(part) is dict and part.get("token"):
        return {**obj, section: {**part, "token": REDACTED}}
    return obj


_LAST_APPLIED_POINTER: Final = "/metadata/annotations/" + LAST_APPLIED_ANNOTATION.replace("/", "~1")


def _redact_json_patch_operation(operation: object) -> object:
    """A JSON patch (RFC 6902) operation on a Secret, with secret values replaced."""
    if type(operation) is not dict or "value" not in operation:
        return operation
    path = operation.get("path")
    value = operation["value"]
    if type(path) is not str or path in ("", "/"):
        redacted = _redact_secret(value) if type(value) is dict else REDACTED
    elif path in ("/data", "/stringData") and type(value) is dict:
        redacted = {key: None if item is None else REDACTED for key, item in value.items()}
    elif path.startswith(("/data", "/stringData")) or path == _LAST_APPLIED_POINTER:
        redacted = REDACTED
    elif path == "/metadata" and type(value) is dict:
        redacted = _redact_secret_metadata(value)
    elif path == "/metadata/annotations" and type(value) is dict:
        redacted = _redact_secret_metadata({"annotations": value})["annotations"]
    else:
        return operation
    return {**operation, "value": redacted}


def _expected(value: object, what: str) -> str:
    if value is None or value == "":
        return "missing"
    return f"must be {what}, got {_type_name(value)}"


def _type_name(value: object) -> str:
    return {dict: "object", list: "list", str: "string", bool: "boolean"}.get(
        type(value), type(value).__name__
    )
