"""CloudTrail's LookupEvents over one event table: one attribute, a time window, pages.

Behaviour follows LookupEvents: at most one lookup attribute (none means every
event in the window), a window of the last 90 days unless given (both ends
inclusive), newest events first, and an opaque next token that is only valid
with the parameters that produced it.

Why keyset pagination: a page is "the next `max_results` events older than
the last one returned", bounded by `(eventTime, eventID)`, so page N costs
the same as page 1 and events that arrive while a caller pages never shift or
repeat what they see (OFFSET would do both). `eventID` breaks ties between
events of the same millisecond, which are common in bursts from one client.

How retried copies are dropped, and why neither `FINAL` nor `LIMIT 1 BY`:
a retried batch that slipped past the gateway's deduplication lands as an
identical row (same eventID, same eventTime) in another part until a merge
collapses it. Measured on 1M events in 24 parts (chDB, 2 cores), a page of 50:
plain `ORDER BY eventTime DESC, eventID DESC LIMIT n` took 55-95 ms, the same
with `FINAL` 240-330 ms (it merges every part in the window before the WHERE
and the top-N), and with `LIMIT 1 BY eventID` 0.6-2.5 s (LIMIT BY sits
between ORDER BY and LIMIT, so ClickHouse can no longer do a top-N partial
sort and sorts every matching row with all its columns). So the query is the
plain top-N, and copies are dropped here by eventID: they are rare, and when
they shorten a page the next rows are fetched after the last one seen (the
keyset bound is strict, so the remaining copies of that event are skipped by
the engine), which keeps each page exactly `max_results` events long.

Reading in sorting-key order (`ORDER BY toStartOfHour(eventTime) DESC, ...`)
lets the engine stop at the newest matching granules: on 10M events a page
by event name went from ~210 ms (every granule read and sorted) to ~50 ms.

Every value reaches ClickHouse as a bound query parameter (`{name:Type}`),
never as SQL text; the table name is a quoted identifier the caller got from
the store catalog.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Final

import orjson

from trail_operator.query.records import RECORD_SELECT_LIST, row_to_record
from trail_operator.store.client import JSON_OUTPUT_SETTINGS_CLAUSE, Store
from trail_operator.store.ddl import LOOKUP_USERNAME_COLUMN
from trail_operator.store.naming import qualified

DEFAULT_WINDOW: Final = timedelta(days=90)
DEFAULT_MAX_RESULTS: Final = 50
MAX_MAX_RESULTS: Final = 1000
MAX_ATTRIBUTE_VALUE_LENGTH: Final = 2000

_TOKEN_VERSION: Final = 1
_PARAM_TIME = "DateTime64(3, 'UTC')"


def _equals(column: str, kind: str) -> str:
    return f"{column} = {{value:{kind}}}"


def _contains(array: str) -> str:
    return f"has({array}, {{value:String}})"


# Each lookup attribute and the condition it becomes. The columns are fixed
# SQL text; the value is always the bound parameter `value`.
ATTRIBUTE_CONDITIONS: Final[dict[str, str]] = {
    "EventId": _equals("eventID", "UUID"),
    "EventName": _equals("eventName", "String"),
    "ReadOnly": _equals("readOnly", "Bool"),
    "Username": _equals(LOOKUP_USERNAME_COLUMN, "String"),
    "ResourceType": _contains("resources.type"),
    "ResourceName": _contains("resources.name"),
    "EventSource": _equals("eventSource", "String"),
    "Namespace": _equals("namespace", "String"),
}
ATTRIBUTE_KEYS: Final = tuple(ATTRIBUTE_CONDITIONS)
_KEYS_TEXT: Final = ", ".join(ATTRIBUTE_KEYS)


class LookupRequestError(ValueError):
    """A lookup request that cannot be run as given; the message says what to change."""


class InvalidLookupAttributeError(LookupRequestError):
    """Unknown attribute key, or a value the attribute cannot take."""


class InvalidTimeRangeError(LookupRequestError):
    """The start of the window is after its end."""


class InvalidMaxResultsError(LookupRequestError):
    """max_results outside 1..1000."""


class InvalidNextTokenError(LookupRequestError):
    """A next token that is malformed or was issued for other parameters."""


@dataclass(frozen=True)
class LookupRequest:
    """The parameters of one LookupEvents call. Naive datetimes are taken as UTC."""

    attribute_key: str | None = None
    attribute_value: str | None = None
    start_time: datetime | None = None
    end_time: datetime | None = None
    max_results: int = DEFAULT_MAX_RESULTS
    next_token: str | None = None


@dataclass(frozen=True)
class LookupPage:
    """One page of events, newest first; `next_token` is None on the last page."""

    records: list[dict[str, Any]] = field(default_factory=list)
    next_token: str | None = None


def parse_lookup_attribute(text: str) -> tuple[str, str]:
    """`KEY=VALUE` (the CLI's `--attribute`) as a checked `(key, value)` pair."""
    key, sep, value = text.partition("=")
    if not sep:
        raise InvalidLookupAttributeError(
            f"lookup attribute {text!r} must be KEY=VALUE, with KEY one of {_KEYS_TEXT}"
        )
    return _check_attribute(key.strip(), value)


def parse_lookup_time(text: str) -> datetime:
    """A time as the CLI takes it: ISO 8601 (`2024-05-01T10:00:00Z`, date only) or epoch seconds."""
    stripped = text.strip()
    try:
        return datetime.fromtimestamp(float(stripped), tz=UTC)
    except (OverflowError, OSError):
        raise LookupRequestError(f"time {text!r} is out of range") from None
    except ValueError:
        pass
    try:
        moment = datetime.fromisoformat(stripped.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        raise LookupRequestError(
            f"time {text!r} is neither ISO 8601 (e.g. 2024-05-01T10:00:00Z) nor epoch seconds"
        ) from None
    return _as_utc(moment)


def lookup(store: Store, table: str, request: LookupRequest) -> LookupPage:
    """Run one LookupEvents page against `store.database`.`table`."""
    attribute = _request_attribute(request)
    max_results = _checked_max_results(request.max_results)
    start, end = _window(request)
    fingerprint = _fingerprint(table, attribute, request)

    conditions = [
        "eventTime >= {start:" + _PARAM_TIME + "}",
        "eventTime <= {end:" + _PARAM_TIME + "}",
    ]
    parameters: dict[str, Any] = {"start": _param_time(start), "end": _param_time(end)}
    if attribute is not None:
        key, value = attribute
        conditions.append(ATTRIBUTE_CONDITIONS[key])
        parameters["value"] = value
    after = _decode_token(request.next_token, fingerprint) if request.next_token else None

    wanted = max_results + 1  # one more than a page tells whether another page exists
    rows: list[dict[str, Any]] = []
    seen: set[str] = set()
    cursor = after
    while len(rows) < wanted:
        batch_limit = wanted - len(rows)
        batch = _fetch(store, table, conditions, parameters, cursor, batch_limit)
        for row in batch:
            if row["eventID"] not in seen:
                seen.add(row["eventID"])
                rows.append(row)
        if len(batch) < batch_limit:
            break
        last_raw = batch[-1]
        cursor = (_parse_event_time(last_raw["eventTime"]), str(last_raw["eventID"]))

    page = [row_to_record(row) for row in rows[:max_results]]
    if len(rows) <= max_results:
        return LookupPage(records=page, next_token=None)
    last = page[-1]
    token = _encode_token(_parse_event_time(last["eventTime"]), last["eventID"], fingerprint)
    return LookupPage(records=page, next_token=token)


def _fetch(
    store: Store,
    table: str,
    conditions: list[str],
    parameters: dict[str, Any],
    after: tuple[datetime, str] | None,
    limit: int,
) -> list[dict[str, Any]]:
    """Up to `limit` rows (copies included) newest first, strictly after `after`."""
    where = list(conditions)
    params = {**parameters, "limit": limit}
    if after is not None:
        # The first condition bounds the read (partitions, primary key); the
        # second skips the rows up to and including the last one returned.
        where.append("eventTime <= {after_time:" + _PARAM_TIME + "}")
        where.append("(eventTime < {after_time:" + _PARAM_TIME + "} OR eventID < {after_id:UUID})")
        params["after_time"] = _param_time(after[0])
        params["after_id"] = after[1]
    sql = (
        f"SELECT {RECORD_SELECT_LIST} FROM {qualified(store.database, table)}"
        f" WHERE {' AND '.join(where)}"
        # The hour first, as in the sorting key, so the engine reads the newest
        # hours in order and stops once it has `limit` rows (same order: the hour
        # only rises with the time). Buffering would read every granule first.
        " ORDER BY toStartOfHour(eventTime) DESC, eventTime DESC, eventID DESC"
        " LIMIT {limit:UInt32}"
        " SETTINGS read_in_order_use_buffering = 0, use_skip_indexes_on_data_read = 0,"
        # Read the wide columns (request bodies) only for the rows returned.
        " query_plan_optimize_lazy_materialization = 1,"
        " query_plan_max_limit_for_lazy_materialization = 1001, "
        + JSON_OUTPUT_SETTINGS_CLAUSE
    )
    data = store.raw_inline(sql, parameters=params)
    return [orjson.loads(line) for line in data.splitlines() if line.strip()]


def _check_attribute(key: str, value: str) -> tuple[str, str]:
    canonical = {k.lower(): k for k in ATTRIBUTE_KEYS}.get(key.lower())
    if canonical is None:
        raise InvalidLookupAttributeError(
            f"unknown lookup attribute key {key!r}: use one of {_KEYS_TEXT}"
        )
    if value == "":
        raise InvalidLookupAttributeError(f"lookup attribute {canonical} needs a non-empty value")
    if len(value) > MAX_ATTRIBUTE_VALUE_LENGTH:
        raise InvalidLookupAttributeError(
            f"lookup attribute {canonical} value is {len(value)} characters;"
            f" at most {MAX_ATTRIBUTE_VALUE_LENGTH} are allowed"
        )
    if canonical == "ReadOnly":
        lowered = value.strip().lower()
        if lowered not in ("true", "false"):
            raise InvalidLookupAttributeError(
                f"lookup attribute ReadOnly must be 'true' or 'false', got {value!r}"
            )
        return canonical, lowered
    if canonical == "EventId":
        try:
            return canonical, str(uuid.UUID(value.strip()))
        except ValueError:
            raise InvalidLookupAttributeError(
                f"lookup attribute EventId must be an event ID (a UUID), got {value!r}"
            ) from None
    return canonical, value


def _request_attribute(request: LookupRequest) -> tuple[str, str] | None:
    if request.attribute_key is None and request.attribute_value is None:
        return None
    if request.attribute_key is None:
        raise InvalidLookupAttributeError(
            f"a lookup attribute value was given without a key: use one of {_KEYS_TEXT}"
        )
    return _check_attribute(request.attribute_key, request.attribute_value or "")


def _checked_max_results(value: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_MAX_RESULTS:
        raise InvalidMaxResultsError(
            f"max_results must be an integer from 1 to {MAX_MAX_RESULTS}, got {value!r}"
        )
    return value


def _as_utc(moment: datetime) -> datetime:
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


def _window(request: LookupRequest) -> tuple[datetime, datetime]:
    end = _as_utc(request.end_time) if request.end_time else datetime.now(UTC)
    start = _as_utc(request.start_time) if request.start_time else end - DEFAULT_WINDOW
    if start > end:
        raise InvalidTimeRangeError(
            f"start_time {_iso(start)} is after end_time {_iso(end)}: the start must not be later"
        )
    return start, end


def _iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def _param_time(moment: datetime) -> str:
    # Millisecond text in UTC: what a DateTime64(3, 'UTC') parameter parses.
    # Truncation (not rounding) keeps an inclusive end from reaching past itself.
    return moment.strftime("%Y-%m-%d %H:%M:%S.") + f"{moment.microsecond // 1000:03d}"


def _parse_event_time(text: str) -> datetime:
    return _as_utc(datetime.fromisoformat(text.replace("Z", "+00:00")))


def _fingerprint(table: str, attribute: tuple[str, str] | None, request: LookupRequest) -> str:
    """What a next token is bound to: the store and the parameters as the caller gave them.

    Defaulted times are hashed as absent, not as their value: "now" moves
    between pages, and the keyset bound already fixes the upper end.
    """
    material = orjson.dumps(
        [
            table,
            list(attribute) if attribute else None,
            _iso(_as_utc(request.start_time)) if request.start_time else None,
            _iso(_as_utc(request.end_time)) if request.end_time else None,
        ]
    )
    return hashlib.sha256(material).hexdigest()[:32]


def _encode_token(after_time: datetime, after_id: str, fingerprint: str) -> str:
    body = orjson.dumps(
        {"v": _TOKEN_VERSION, "t": _iso(after_time), "id": after_id, "h": fingerprint}
    )
    return base64.urlsafe_b64encode(body).decode().rstrip("=")


def _decode_token(token: str, fingerprint: str) -> tuple[datetime, str]:
    try:
        padded = token.strip() + "=" * (-len(token.strip()) % 4)
        body = orjson.loads(base64.urlsafe_b64decode(padded.encode()))
        if not isinstance(body, dict) or body.get("v") != _TOKEN_VERSION:
            raise ValueError("unknown token shape")
        after_time = _parse_event_time(str(body["t"]))
        after_id = str(uuid.UUID(str(body["id"])))
        issued_for = str(body["h"])
    except (ValueError, KeyError, TypeError, binascii.Error, orjson.JSONDecodeError):
        raise InvalidNextTokenError(
            "the next token is not one this lookup issued; start again without a next token"
        ) from None
    if issued_for != fingerprint:
        raise InvalidNextTokenError(
            "the next token was issued for different lookup parameters (attribute, time range"
            " or store); repeat the original parameters with it, or start again without it"
        )
    return after_time, after_id
