"""One `/k8s-audit` call's CPU-bound part: parse, normalize, route, encode.

Well-formed bodies take the decoder of `k8s_audit_decode` (typed, request
bodies kept raw); anything else is parsed whole and judged by the reference
normalizer, which names what was wrong.

A pure function of the body and the routes, kept apart from the HTTP handler
so the handler only deals with status codes, metrics and the batcher. It
returns encoded rows, not records: the parsed body is freed before the handler
waits for the spool, while it is still in the CPU caches (freeing it after the
wait, with other calls' bodies in between, measured as a sixth of the
gateway's time under load).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Final, TypeVar

import orjson

from trail_operator.events.k8s_audit import (
    AuditEventNormalizer,
    AuditPayloadError,
    AuditRejection,
)
from trail_operator.events.k8s_audit_decode import decode_event_list
from trail_operator.events.record import RECORD_FIELDS, Record, Row, row_from_record
from trail_operator.gateway.routing import Routes, tables_for_row
from trail_operator.store.rows import RowChunks, encode_chunk, encode_values

_EVENT_ID: Final = RECORD_FIELDS.index("eventID")

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class ParsedAuditCall:
    """What one `/k8s-audit` body became: rows to store, and what was refused."""

    received: int
    accepted: int
    # (eventID, encoded row, tables) for each record that some store takes.
    rows: list[tuple[str, bytes, tuple[str, ...]]]
    rejections: list[dict[str, Any]]


class AuditCallError(ValueError):
    """The body as a whole is refused; `reason` is the metric label, `code` the error code."""

    def __init__(self, reason: str, code: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.code = code


@dataclass(frozen=True, slots=True)
class GroupedAuditCall:
    """A `ParsedAuditCall` with its rows joined by table: what a parse worker sends back.

    A chunk per table instead of a tuple per row: handing rows between processes
    then costs a few copies instead of building objects for each row (which
    measured ~2 us per event, both ends together), and the chunks go on as they
    are to the spool and the INSERT.
    """

    received: int
    accepted: int
    # eventIDs of the rows that some store takes, in order.
    ids: list[str]
    rows: dict[str, RowChunks]
    rejections: list[dict[str, Any]]


def group_by_table(rows: Iterable[tuple[str, bytes, Sequence[str]]]
                   ) -> dict[str, RowChunks]:
    """Encoded rows by the tables that take them, from (eventID, row, tables)."""
    return {table: RowChunks.of_rows(kept)
            for table, kept in _by_table((data, tables) for _, data, tables in rows).items()}


def _by_table(items: Iterable[tuple[T, Sequence[str]]]) -> dict[str, list[T]]:
    """Each item in the list of every table it goes to, in order."""
    by_table: dict[str, list[T]] = {}
    for item, tables in items:
        for table in tables:
            kept = by_table.get(table)
            if kept is None:
                by_table[table] = [item]
            else:
                kept.append(item)
    return by_table


def parse_audit_call(normalizer: AuditEventNormalizer, routes: Routes,
                     body: bytes) -> ParsedAuditCall:
    """Rows to store for an EventList body; raises AuditCallError for a body refused whole."""
    received, values, rejections = _normalized(normalizer, body)
    rows = []
    for row in values:
        tables = tables_for_row(routes, row)
        if tables:
            rows.append((row[_EVENT_ID], encode_values(row), tables))
    return ParsedAuditCall(received, len(values), rows, _rejection_entries(rejections))


def parse_grouped_audit_call(normalizer: AuditEventNormalizer, routes: Routes,
                             body: bytes) -> GroupedAuditCall:
    """`parse_audit_call` with the rows grouped by table as they come: each table's
    rows are encoded in one call (`encode_chunk`), which took 6-9% less of the
    parse path's time than a call per row."""
    received, values, rejections = _normalized(normalizer, body)
    routed = [(row, tables) for row in values if (tables := tables_for_row(routes, row))]
    return GroupedAuditCall(
        received, len(values), [row[_EVENT_ID] for row, _ in routed],
        {table: encode_chunk(rows) for table, rows in _by_table(routed).items()},
        _rejection_entries(rejections))


def _normalized(normalizer: AuditEventNormalizer, body: bytes
                ) -> tuple[int, list[Row], list[AuditRejection]]:
    """(items received, records as rows, rejections) of a body."""
    decoded = decode_event_list(normalizer, body)
    if decoded is not None:
        return decoded
    received, records, rejections = _reference_parse(normalizer, body)
    return received, [row_from_record(record) for record in records], rejections


def _rejection_entries(rejections: list[AuditRejection]) -> list[dict[str, Any]]:
    return [{"index": r.index, "auditID": r.audit_id, "reason": r.reason} for r in rejections]


def _reference_parse(normalizer: AuditEventNormalizer, body: bytes
                     ) -> tuple[int, list[Record], list[AuditRejection]]:
    """What the fast path declined: parse it all and let the reference judge it."""
    try:
        payload = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise AuditCallError("malformed_json", "MalformedJSON",
                             f"body is not valid JSON: {exc}") from None
    try:
        records, rejections = normalizer.normalize_list(payload)
    except AuditPayloadError as exc:
        raise AuditCallError("wrong_kind", "InvalidEventList", str(exc)) from None
    items = payload.get("items")
    return len(items) if isinstance(items, list) else 0, records, rejections
