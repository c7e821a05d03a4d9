"""Which event data stores receive a record.

The routing table is rebuilt from the store catalog whenever it changes and
swapped in whole, so the hot path reads one immutable tuple without locks.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from trail_operator.events.record import Record
from trail_operator.events.selectors import SelectorError, compile_selectors
from trail_operator.store.catalog import StoreEntry


@dataclass(frozen=True)
class Route:
    entry: StoreEntry
    matches: Callable[[Record], bool]

    def accepts(self, record: Record) -> bool:
        entry = self.entry
        if not entry.all_namespaces and record.get("namespace") != entry.namespace:
            return False
        return self.matches(record)


def build_routes(entries: list[StoreEntry]) -> tuple[tuple[Route, ...], list[str]]:
    """Routes for the stores that take events, and a message per store skipped."""
    routes: list[Route] = []
    problems: list[str] = []
    for entry in entries:
        if not entry.ingestion_enabled:
            continue
        try:
            routes.append(Route(entry, compile_selectors(entry.selectors)))
        except SelectorError as exc:
            problems.append(f"{entry.ref}: {exc}")
    return tuple(routes), problems


def tables_for(routes: tuple[Route, ...], record: Record) -> list[str]:
    return [route.entry.table for route in routes if route.accepts(record)]
