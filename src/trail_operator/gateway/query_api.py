"""The query API: CloudTrail's LookupEvents and Lake SQL over the gateway's HTTPS port.

Why in the gateway: it already serves HTTPS, keeps the store catalog fresh
(`Gateway.entries`) and holds the one store client, which with the embedded
chDB store is the only way into the data from another process. The logic
lives in `query/` (no HTTP there); this module only authenticates, checks
the body, authorizes and translates errors into answers.

- `POST /LookupEvents`: `{"LookupAttributes": [{"AttributeKey", "AttributeValue"}]
  (0 or 1), "StartTime", "EndTime" (ISO 8601 or epoch seconds), "MaxResults",
  "NextToken", "EventDataStore": "<namespace>/<name>"}`; without
  `EventDataStore` the Event history of the admin namespace is read, as
  CloudTrail's LookupEvents reads Event history. Answer: `{"Events":
  [{"EventId", "EventName", "ReadOnly" ("true"/"false", as CloudTrail),
  "Username", "EventTime" (ISO 8601, ms, Z), "EventSource", "Resources":
  [{"ResourceType", "ResourceName"}], "CloudTrailEvent": <the record as a JSON
  string>}], "NextToken": <str or null>}`.
- `POST /Query`: `{"QueryStatement", "Dialect": "clickhouse" (default) or
  "trino", "Page" (1-based, default 1), "PageSize" (default 100, at most
  10000)}`. Answer: `{"Columns": [{"Name", "Type"}], "Rows": [[...]],
  "QueryStatistics": {"RowsScanned", "BytesScanned", "ExecutionTimeInMillis"},
  "NextPage": <int or null>}`. The dialect is never guessed: most Lake SQL
  parses in both, with different meanings in places (functions, NULLs in
  outer joins), so a guess could silently change an answer.

Every call needs a Kubernetes bearer token (401 without a valid one), and
reading a store needs `get` on `eventdatastores/events` in its namespace
(`gateway.authz`). In SQL every store the query names, wherever it appears
(joins, subqueries, CTEs), must pass that check; a store that does not
exist and one the caller may not read get the same 403 and the same
message, so the API never tells anyone which stores exist where they may
not look. Errors are `{"errorCode", "message", ...}` with CloudTrail's error
codes where CloudTrail has one; no stack trace ever leaves the gateway.

Why reads run on threads of their own: the ingest path hands its inserts
to the event loop's default executor and shares the store's small client
pool. A query may run for up to a minute; on the default executor a few of
them would queue every insert behind them. So reads run on
`store.pool_size - 1` threads (at least one) of this module's own: they never
hold every store client, ingest always keeps one, and reads past
`MAX_PENDING_READS` are answered 429 instead of piling up.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any, Final, TypeVar

import orjson
from aiohttp import web

from trail_operator.config import EVENT_HISTORY_NAME
from trail_operator.gateway.app import Gateway, error_response
from trail_operator.gateway.auth import bearer_token
from trail_operator.gateway.authz import (
    READ_PERMISSION,
    AuthzError,
    Caller,
    KubernetesAuthorizer,
)
from trail_operator.query.lookup import (
    DEFAULT_MAX_RESULTS,
    InvalidLookupAttributeError,
    InvalidMaxResultsError,
    InvalidNextTokenError,
    InvalidTimeRangeError,
    LookupPage,
    LookupRequest,
    LookupRequestError,
    lookup,
    parse_lookup_time,
)
from trail_operator.query.sql import (
    DIALECTS,
    MAX_PAGE_SIZE,
    Dialect,
    InvalidPageError,
    QueryError,
    QueryExecutionError,
    QueryLimitError,
    QueryRejectedError,
    QueryResult,
    QuerySyntaxError,
    UnknownTableError,
    prepare_query,
    run_query,
)
from trail_operator.store.catalog import StoreEntry
from trail_operator.store.client import StoreUnavailableError

log = logging.getLogger(__name__)

DEFAULT_PAGE_SIZE: Final = 100
# Reads waiting for (or holding) a read thread before new ones are told to retry.
MAX_PENDING_READS: Final = 32

T = TypeVar("T")

LOOKUP_FIELDS: Final = (
    "LookupAttributes", "StartTime", "EndTime", "MaxResults", "NextToken", "EventDataStore",
)  # fmt: skip
QUERY_FIELDS: Final = ("QueryStatement", "Dialect", "Page", "PageSize")

_STORE_REF: Final = re.compile(r"^([^/\s]+)/([^/\s]+)$")

# LookupEvents errors and CloudTrail's codes for them (most specific first).
_LOOKUP_ERROR_CODES: Final[tuple[tuple[type[LookupRequestError], str], ...]] = (
    (InvalidLookupAttributeError, "InvalidLookupAttributesException"),
    (InvalidTimeRangeError, "InvalidTimeRangeException"),
    (InvalidMaxResultsError, "InvalidMaxResultsException"),
    (InvalidNextTokenError, "InvalidNextTokenException"),
    (LookupRequestError, "InvalidParameterException"),
)


class ReadsThrottledError(Exception):
    """Too many reads are waiting already; answered with 429."""


class BadRequestError(Exception):
    """A request body the API cannot take; answered with 400 and `code`."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


def _answer(status: int, code: str, message: str, **extra: Any) -> web.Response:
    response = error_response(status, code, message, **extra)
    if status == 401:
        response.headers["WWW-Authenticate"] = 'Bearer realm="trail-operator"'
    return response


def _json(body: dict[str, Any]) -> web.Response:
    return web.Response(body=orjson.dumps(body), content_type="application/json")


class QueryApi:
    """The handlers of the query API over one gateway's store and catalog."""

    def __init__(self, gateway: Gateway, authorizer: KubernetesAuthorizer) -> None:
        self.gateway = gateway
        self.authorizer = authorizer
        # Threads start on first use, so gateways that serve no queries make none.
        self._reads = ThreadPoolExecutor(max(1, gateway.store.pool_size - 1),
                                         thread_name_prefix="query-api")
        self._pending_reads = 0

    async def _read(self, call: Callable[[], T]) -> T:
        """Run a store read on the read threads; ReadsThrottledError when too many wait."""
        if self._pending_reads >= MAX_PENDING_READS:
            raise ReadsThrottledError(
                f"{self._pending_reads} lookups and queries are already waiting; retry shortly")
        self._pending_reads += 1
        try:
            return await asyncio.get_running_loop().run_in_executor(self._reads, call)
        finally:
            self._pending_reads -= 1

    @property
    def event_history_ref(self) -> str:
        return f"{self.gateway.settings.admin_namespace}/{EVENT_HISTORY_NAME}"

    # LookupEvents -------------------------------------------------------------

    async def lookup_events(self, request: web.Request) -> web.Response:
        try:
            caller = await self.authorizer.authenticate_async(bearer_token(request))
            body = await _json_body(request, LOOKUP_FIELDS)
            ref = _optional_str(body, "EventDataStore") or self.event_history_ref
            namespace, name = _parse_store_ref(ref)
            lookup_request = _lookup_request(body)
            await self.authorizer.require_read_async(caller, namespace, name)
        except AuthzError as exc:
            return _answer(exc.status, exc.code, str(exc))
        except BadRequestError as exc:
            return _answer(400, exc.code, str(exc))
        except LookupRequestError as exc:
            return _answer(400, _lookup_error_code(exc), str(exc))

        entry = self.gateway.entries.get(f"{namespace}/{name}")
        if entry is None:
            if not self.gateway.routes_loaded:
                return _answer(503, "ServiceUnavailable", "the store catalog is not loaded yet")
            return _answer(404, "EventDataStoreNotFoundException",
                           f"EventDataStore {namespace}/{name} does not exist or is not ready"
                           f" yet: `kubectl get eds -n {namespace}` shows its state")
        store = self.gateway.store
        try:
            page = await self._read(lambda: lookup(store, entry.table, lookup_request))
        except ReadsThrottledError as exc:
            return _answer(429, "Throttling", str(exc))
        except LookupRequestError as exc:
            return _answer(400, _lookup_error_code(exc), str(exc))
        except StoreUnavailableError:
            return _answer(503, "ServiceUnavailable", "the event store is unreachable; retry")
        except Exception:  # never a stack trace to the caller; the log has it
            log.exception("LookupEvents on %s failed", entry.ref)
            return _answer(500, "InternalFailure",
                           "the lookup failed inside the gateway; its log has the details")
        return _json(lookup_answer(page))

    # Query --------------------------------------------------------------------

    async def query(self, request: web.Request) -> web.Response:
        try:
            caller = await self.authorizer.authenticate_async(bearer_token(request))
            body = await _json_body(request, QUERY_FIELDS)
            statement = body.get("QueryStatement")
            if not isinstance(statement, str) or not statement.strip():
                raise BadRequestError("InvalidParameterException",
                                      "QueryStatement is required: the SQL text to run")
            dialect = _dialect(body.get("Dialect"))
            page = _positive_int(body, "Page", 1, None)
            page_size = _positive_int(body, "PageSize", DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE)
        except AuthzError as exc:
            return _answer(exc.status, exc.code, str(exc))
        except BadRequestError as exc:
            return _answer(400, exc.code, str(exc))

        resolve = self._table_resolver(caller)
        store = self.gateway.store

        def run() -> QueryResult:
            prepared = prepare_query(statement, dialect, resolve, store.database)
            log.info("query by %s over %s", caller.username,
                     ", ".join(t.ref for t in prepared.tables) or "no store")
            return run_query(store, prepared, page_size=page_size, page=page)

        try:
            result = await self._read(run)
        except ReadsThrottledError as exc:
            return _answer(429, "Throttling", str(exc))
        except AuthzError as exc:
            return _answer(exc.status, exc.code, str(exc))
        except QueryError as exc:
            return _query_error_answer(exc)
        except StoreUnavailableError:
            return _answer(503, "ServiceUnavailable", "the event store is unreachable; retry")
        except Exception:  # never a stack trace to the caller; the log has it
            log.exception("query by %s failed", caller.username)
            return _answer(500, "InternalFailure",
                           "the query failed inside the gateway; its log has the details")
        return _json(query_answer(result))

    def _table_resolver(self, caller: Caller) -> Callable[[str], str | None]:
        """`resolve_table` for prepare_query: the table of a store `caller` may read, else None.

        A reference is a store's `namespace/name`, its table name or its uid.
        The catalog is read once per query, so every reference in it sees the
        same stores. Runs in the worker thread, so the access check blocks.
        """
        index: dict[str, StoreEntry] = {}
        for entry in list(self.gateway.entries.values()):
            index[entry.ref] = entry
            index[entry.table] = entry
            index[entry.uid] = entry

        def resolve(ref: str) -> str | None:
            entry = index.get(ref)
            if entry is None:
                return None
            if not self.authorizer.may_read(caller, entry.namespace, entry.name):
                return None
            return entry.table

        return resolve


def query_routes(gateway: Gateway,
                 authorizer: KubernetesAuthorizer | None = None) -> list[web.RouteDef]:
    """The query API's routes, for `web.Application.add_routes`."""
    api = QueryApi(gateway, authorizer or KubernetesAuthorizer())
    handlers: list[tuple[str, Callable[[web.Request], Awaitable[web.StreamResponse]]]] = [
        ("/LookupEvents", api.lookup_events),
        ("/Query", api.query),
    ]
    return [web.post(path, handler) for path, handler in handlers]


# answers ----------------------------------------------------------------------


def lookup_event(record: dict[str, Any]) -> dict[str, Any]:
    """One record as a LookupEvents `Events` item (CloudTrail's shape; absent fields omitted)."""
    identity = record.get("userIdentity") or {}
    event: dict[str, Any] = {
        "EventId": record.get("eventID"),
        "EventName": record.get("eventName"),
        "ReadOnly": "true" if record.get("readOnly") else "false",
        "Username": identity.get("username") if isinstance(identity, dict) else None,
        "EventTime": record.get("eventTime"),
        "EventSource": record.get("eventSource"),
        "Resources": [
            {k: v for k, v in (("ResourceType", r.get("type")), ("ResourceName", r.get("name")))
             if v}
            for r in record.get("resources") or [] if isinstance(r, dict)
        ],
        "CloudTrailEvent": orjson.dumps(record).decode(),
    }
    return {k: v for k, v in event.items() if v is not None}


def lookup_answer(page: LookupPage) -> dict[str, Any]:
    return {"Events": [lookup_event(r) for r in page.records], "NextToken": page.next_token}


def query_answer(result: QueryResult) -> dict[str, Any]:
    return {
        "Columns": [{"Name": c.name, "Type": c.type} for c in result.columns],
        "Rows": result.rows,
        "QueryStatistics": {
            "RowsScanned": result.stats.rows_scanned,
            "BytesScanned": result.stats.bytes_scanned,
            "ExecutionTimeInMillis": round(result.stats.elapsed_ms),
        },
        "NextPage": result.page + 1 if result.has_more else None,
    }


def _query_error_answer(exc: QueryError) -> web.Response:
    if isinstance(exc, UnknownTableError):
        return _answer(
            403, "AccessDeniedException",
            f"table {exc.ref!r} is unknown or not permitted: a query can read only event data"
            f" stores whose namespace grants you {READ_PERMISSION}, named as"
            ' "<namespace>/<name>" (double quotes in Trino, backticks in ClickHouse), by'
            " table name, or by uid",
            table=exc.ref,
        )
    if isinstance(exc, QuerySyntaxError):
        return _answer(400, "InvalidQueryStatementException", str(exc),
                       line=exc.line, column=exc.column)
    if isinstance(exc, QueryRejectedError | QueryExecutionError):
        return _answer(400, "InvalidQueryStatementException", str(exc))
    if isinstance(exc, InvalidPageError):
        return _answer(400, "InvalidParameterException", str(exc))
    if isinstance(exc, QueryLimitError):
        return _answer(422, "QueryLimitExceededException", str(exc), limit=exc.limit)
    log.warning("query failed: %s", exc)
    return _answer(500, "InternalFailure", f"the query failed: {str(exc).splitlines()[0][:300]}")


def _lookup_error_code(exc: LookupRequestError) -> str:
    return next(code for kind, code in _LOOKUP_ERROR_CODES if isinstance(exc, kind))


# request bodies ---------------------------------------------------------------


async def _json_body(request: web.Request, fields: tuple[str, ...]) -> dict[str, Any]:
    raw = await request.read()
    try:
        body = orjson.loads(raw) if raw.strip() else {}
    except orjson.JSONDecodeError as exc:
        raise BadRequestError("MalformedJSON", f"body is not valid JSON: {exc}") from None
    if not isinstance(body, dict):
        raise BadRequestError("MalformedJSON", "body must be a JSON object")
    unknown = sorted(set(body) - set(fields))
    if unknown:
        raise BadRequestError(
            "InvalidParameterException",
            f"unknown field(s) {', '.join(unknown)}: this call takes {', '.join(fields)}",
        )
    return body


def _optional_str(body: dict[str, Any], key: str) -> str | None:
    value = body.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        raise BadRequestError("InvalidParameterException",
                              f"{key} must be a string, got {type(value).__name__}")
    return value


def _parse_store_ref(ref: str) -> tuple[str, str]:
    match = _STORE_REF.match(ref.strip())
    if match is None:
        raise BadRequestError(
            "InvalidParameterException",
            f"EventDataStore {ref!r} must be <namespace>/<name> (e.g. team-a/audit)",
        )
    return match.group(1), match.group(2)


def _lookup_request(body: dict[str, Any]) -> LookupRequest:
    key = value = None
    attributes = body.get("LookupAttributes")
    if attributes is not None:
        if not isinstance(attributes, list):
            raise InvalidLookupAttributeError(
                "LookupAttributes must be a list of {AttributeKey, AttributeValue}")
        if len(attributes) > 1:
            raise InvalidLookupAttributeError(
                f"LookupAttributes holds {len(attributes)} attributes; at most one is allowed,"
                " as in CloudTrail's LookupEvents")
        if attributes:
            attribute = attributes[0]
            if not isinstance(attribute, dict) or not all(
                isinstance(attribute.get(k), str) for k in ("AttributeKey", "AttributeValue")
            ):
                raise InvalidLookupAttributeError(
                    "a lookup attribute must be {\"AttributeKey\": <string>,"
                    " \"AttributeValue\": <string>}")
            key, value = attribute["AttributeKey"], attribute["AttributeValue"]
    max_results = body.get("MaxResults", DEFAULT_MAX_RESULTS)
    return LookupRequest(
        attribute_key=key,
        attribute_value=value,
        start_time=_time(body, "StartTime"),
        end_time=_time(body, "EndTime"),
        max_results=max_results,
        next_token=_optional_str(body, "NextToken") or None,
    )


def _time(body: dict[str, Any], key: str) -> datetime | None:
    value = body.get(key)
    if value is None:
        return None
    try:
        if isinstance(value, int | float) and not isinstance(value, bool):
            return datetime.fromtimestamp(value, tz=UTC)
        if isinstance(value, str):
            return parse_lookup_time(value)
    except (ValueError, OverflowError, OSError):
        pass
    raise LookupRequestError(
        f"{key} {value!r} is not a time: use ISO 8601 (e.g. 2024-05-01T10:00:00Z)"
        " or epoch seconds")


def _dialect(value: Any) -> Dialect:
    if value is None:
        return "clickhouse"
    if isinstance(value, str):
        lowered = value.strip().lower()
        if lowered == "clickhouse":
            return "clickhouse"
        if lowered == "trino":
            return "trino"
    raise BadRequestError("InvalidParameterException",
                          f"Dialect must be one of {', '.join(DIALECTS)}, got {value!r}")


def _positive_int(body: dict[str, Any], key: str, default: int, maximum: int | None) -> int:
    value = body.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or value < 1 or (
        maximum is not None and value > maximum
    ):
        upper = f" to {maximum}" if maximum is not None else " or more"
        raise BadRequestError("InvalidParameterException",
                              f"{key} must be an integer from 1{upper}, got {value!r}")
    return value
