"""Which event data stores receive a record.

The routing table is rebuilt from the store catalog whenever it changes and
swapped in whole, so the hot path reads one immutable tuple without locks.

Routing is remembered per combination of the fields the stores' selectors
read (and the namespace): a cluster's events fall into few such combinations,
so most records cost one key and one dict lookup instead of every store's
predicate. The memo is bounded; a combination seen again after it was
cleared is only computed again. Keys compare values, which suits records as
the normalizers make them (strings, booleans or None in these fields).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from operator import itemgetter
from typing import Any, Final

from trail_operator.events.record import (
    RECORD_FIELDS,
    Record,
    Row,
    record_from_row,
    row_from_record,
)
from trail_operator.events.selectors import SelectorError, compile_selectors, selector_fields
from trail_operator.store.catalog import StoreEntry

_MEMO_LIMIT: Final = 4096


@dataclass(frozen=True)
class Route:
    entry: StoreEntry
    matches: Callable[[Record], bool]

    def accepts(self, record: Record) -> bool:
        entry = self.entry
        if not entry.all_namespaces and record.get("namespace") != entry.namespace:
            return False
        return self.matches(record)


RowKey = Callable[[Row], tuple[Any, ...]]


def _no_key(row: Row) -> tuple[Any, ...]:
    return ()


@dataclass(frozen=True)
class Routes:
    """The stores that take events, and a memo of their decisions."""

    routes: tuple[Route, ...] = ()
    # What the memo is keyed by: the values of the fields the selectors read
    # (and the namespace), taken from a record's row.
    key: RowKey = _no_key
    memo: dict[tuple[Any, ...], tuple[str, ...]] = field(
        default_factory=dict, init=False, repr=False, compare=False)


def build_routes(entries: list[StoreEntry]) -> tuple[Routes, list[str]]:
    """Routes for the stores that take events, and a message per store skipped."""
    routes: list[Route] = []
    problems: list[str] = []
    fields: set[str] = set()
    for entry in entries:
        if not entry.ingestion_enabled:
            continue
        try:
            routes.append(Route(entry, compile_selectors(entry.selectors)))
        except SelectorError as exc:
            problems.append(f"{entry.ref}: {exc}")
            continue
        fields |= selector_fields(entry.selectors)
        if not entry.all_namespaces:
            fields.add("namespace")
    return Routes(tuple(routes), _row_key(fields)), problems


_IDENTITY: Final = RECORD_FIELDS.index("userIdentity")
_RESOURCES: Final = RECORD_FIELDS.index("resources")


def _row_key(fields: Iterable[str]) -> RowKey:
    """The memo key of a row: the values of these selector fields."""
    flat = sorted(RECORD_FIELDS.index(name) for name in fields if "." not in name)
    nested = sorted(name for name in fields if "." in name)
    resource_keys = tuple(name.partition(".")[2] for name in nested
                          if name.startswith("resources."))
    with_username = "userIdentity.username" in nested
    # itemgetter gives a tuple only for two or more positions.
    take = (itemgetter(*flat) if len(flat) > 1
            else (lambda row: (row[flat[0]],)) if flat else _no_key)
    if not nested:
        return take

    def key(row: Row) -> tuple[Any, ...]:
        parts: list[Any] = list(take(row))
        if with_username:
            identity = row[_IDENTITY]
            parts.append(identity.get("username") if identity else None)
        resources = row[_RESOURCES] or ()
        for name in resource_keys:
            parts.append(tuple(resource.get(name) for resource in resources))
        return tuple(parts)

    return key


def tables_for(routes: Routes, record: Record) -> tuple[str, ...]:
    """The tables of the stores that take `record`."""
    return tables_for_row(routes, row_from_record(record))


def tables_for_row(routes: Routes, row: Row) -> tuple[str, ...]:
    """The tables of the stores that take the record whose values are `row`."""
    key = routes.key(row)
    memo = routes.memo
    try:
        return memo[key]
    except KeyError:
        pass
    except TypeError:  # a value that cannot be a key: decide without the memo
        return _decide(routes, record_from_row(row))
    tables = memo[key] = _decide(routes, record_from_row(row))
    if len(memo) > _MEMO_LIMIT:
        memo.clear()
    return tables


def _decide(routes: Routes, record: Record) -> tuple[str, ...]:
    return tuple(route.entry.table for route in routes.routes if route.accepts(record))
