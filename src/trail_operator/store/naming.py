"""Safe, unique ClickHouse identifiers for Kubernetes objects.

Kubernetes names allow `-` and `.`, which SQL identifiers do not; mapping them
to `_` alone would let `a-b/c` and `a/b-c` collide, so every table name ends in
a hash of the exact `namespace/name`. Identifiers are also always quoted.
"""

from __future__ import annotations

import hashlib
import re

_UNSAFE = re.compile(r"[^a-z0-9_]")
_MAX_READABLE = 40


class UnsafeIdentifierError(ValueError):
    """An identifier that cannot be quoted safely was asked for."""


def table_name_for(namespace: str, name: str) -> str:
    """The table of EventDataStore `namespace/name`: readable, unique, a valid identifier."""
    readable = _UNSAFE.sub("_", f"{namespace}__{name}".lower())[:_MAX_READABLE]
    digest = hashlib.sha256(f"{namespace}/{name}".encode()).hexdigest()[:10]
    return f"eds_{readable}_{digest}"


def quote_identifier(identifier: str) -> str:
    """Backtick-quote an identifier we generated; refuse anything that could break out."""
    if not identifier or "`" in identifier or "\\" in identifier or "\x00" in identifier:
        raise UnsafeIdentifierError(f"refusing to quote identifier {identifier!r}")
    return f"`{identifier}`"


def qualified(database: str, table: str) -> str:
    return f"{quote_identifier(database)}.{quote_identifier(table)}"
