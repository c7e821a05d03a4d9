"""Rows of an event table turned back into the record shape of SPEC.md.

The table stores a record in typed columns: every field exists on every row,
missing strings are `''`, missing tuples are all-empty, and the free-form
objects (`requestParameters`, `responseElements`, `additionalEventData`, the
fields an import carried that have no column: `extraFields`) are JSON text.
Readers (lookup, the CLI, exports) want the record as it arrived, so this
module undoes that: it parses the JSON text back into objects, drops the empty
values the typed columns invented, and lifts `extraFields` back to the top.

What cannot be undone: a source's explicit empty string or empty list is
indistinguishable from a missing one and is dropped too, and the booleans
(`readOnly`, `managementEvent`) are always present (false when the source had
none). `ingestTime` is the store's own bookkeeping and never leaves it.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, Final

import orjson

from trail_operator.store.ddl import EVENT_COLUMNS, LOOKUP_USERNAME_COLUMN
from trail_operator.store.naming import quote_identifier

# Columns that belong to the store, not to the record.
STORE_ONLY_COLUMNS: Final = ("ingestTime", LOOKUP_USERNAME_COLUMN)

# Columns holding JSON text that is parsed back into a value.
JSON_TEXT_COLUMNS: Final = ("requestParameters", "responseElements", "additionalEventData")

# The column that holds a source's top-level fields without a column of their own.
EXTRA_FIELDS_COLUMN: Final = "extraFields"

# Nested string fields that hold JSON text (CloudTrail's sessionContext is an object).
_NESTED_JSON_TEXT: Final = frozenset({"sessionContext"})

RECORD_COLUMNS: Final[tuple[str, ...]] = tuple(
    name for name, _ in EVENT_COLUMNS if name not in STORE_ONLY_COLUMNS
)

# The SELECT list that reads a whole record. Use it with `Store.raw(...,
# fmt="JSONEachRow")`, whose output settings write named tuples as objects and
# DateTime64 as ISO 8601 with `Z`, which is CloudTrail's eventTime format.
RECORD_SELECT_LIST: Final = ", ".join(quote_identifier(name) for name in RECORD_COLUMNS)


def row_to_record(row: dict[str, Any]) -> dict[str, Any]:
    """One JSONEachRow row of an event table as the event record it stores."""
    record: dict[str, Any] = {}
    extra: dict[str, Any] = {}
    for name, value in row.items():
        if name in STORE_ONLY_COLUMNS:
            continue
        if name == EXTRA_FIELDS_COLUMN:
            extra = _extra_fields(value)
            continue
        if name in JSON_TEXT_COLUMNS:
            if isinstance(value, str):
                if value == "":
                    continue
                record[name] = _parse_json_text(value)
            else:
                record[name] = value
            continue
        if isinstance(value, bool):
            # Booleans have no "missing" value in the table: keep them.
            record[name] = value
            continue
        compacted = _compact(value)
        if not _is_empty(compacted):
            record[name] = compacted
    for name, value in extra.items():
        # A column always wins: the extra fields are only those without one.
        record.setdefault(name, value)
    return record


def records_from_json_each_row(data: bytes) -> Iterator[dict[str, Any]]:
    """Records from the raw `FORMAT JSONEachRow` output of a `RECORD_SELECT_LIST` query."""
    for line in data.splitlines():
        if line.strip():
            yield row_to_record(orjson.loads(line))


def _extra_fields(value: Any) -> dict[str, Any]:
    if isinstance(value, dict):
        return value
    if not isinstance(value, str) or value == "":
        return {}
    parsed = _parse_json_text(value)
    return parsed if isinstance(parsed, dict) else {}


def _parse_json_text(text: str) -> Any:
    """JSON text back into its value; text that is not JSON was a plain string."""
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        return text


def _compact(value: Any) -> Any:
    """Drop the empty values a typed column stands in for "absent"."""
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for key, item in value.items():
            if isinstance(item, bool):
                out[key] = item
                continue
            if key in _NESTED_JSON_TEXT and isinstance(item, str) and item:
                out[key] = _parse_json_text(item)
                continue
            compacted = _compact(item)
            if not _is_empty(compacted):
                out[key] = compacted
        return out
    if isinstance(value, list):
        # Entries are kept as they are, except tuples (resources) that were all empty.
        return [item for item in (_compact(v) for v in value) if item != {}]
    return value


def _is_empty(value: Any) -> bool:
    return value is None or (isinstance(value, str | list | dict) and len(value) == 0)
