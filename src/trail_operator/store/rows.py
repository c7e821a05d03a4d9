"""How event records travel to ClickHouse: one JSON array per row, columns by position.

JSONCompactEachRow rather than JSONEachRow: the engine matches no key names
and parses ~25% fewer bytes, which measured ~25% more rows/s on the same
records; the rows read back are identical. The column list below fixes the
positions, so a record that lacks a field inserts the column's default.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Final

import msgspec

from trail_operator.events.record import (
    RECORD_FIELDS,
    Record,
    Row,
    SharedIdentity,
    row_from_record,
)
from trail_operator.store.errors import StoreDataError

if TYPE_CHECKING:  # a parse worker encodes rows without loading the driver
    from trail_operator.store.client import Store

ROW_COLUMNS: Final = RECORD_FIELDS


# msgspec rather than orjson: the audit fast path keeps request and response
# bodies as `msgspec.Raw`, which this writes out as they came.
_ENCODER: Final = msgspec.json.Encoder()
_ENCODE: Final = _ENCODER.encode
_ENCODE_LINES: Final = _ENCODER.encode_lines  # a row per line, each ending in a newline


_IDENTITY_POSITION: Final = ROW_COLUMNS.index("userIdentity")


@dataclass(slots=True)
class RowChunks:
    """One table's encoded rows, as chunks of rows joined by newlines (none has one).

    A call's rows stay one chunk from the parse worker through the spool to the
    INSERT. Held as a bytes object per row, they were split after the worker and
    joined again for the spool and the INSERT, which took a fifth of the
    gateway's Python time under load: objects of ~1 KB each, made in one thread
    and freed in another.
    """

    chunks: list[bytes] = field(default_factory=list)
    count: int = 0

    @classmethod
    def of_rows(cls, rows: Sequence[bytes]) -> RowChunks:
        return cls([b"\n".join(rows)], len(rows)) if rows else cls()

    def __len__(self) -> int:
        return self.count

    def add(self, chunk: bytes, count: int) -> None:
        """A chunk of `count` rows joined by newlines."""
        if count:
            self.chunks.append(chunk)
            self.count += count

    def extend(self, other: RowChunks) -> None:
        self.chunks += other.chunks
        self.count += other.count

    def joined(self) -> bytes:
        return b"\n".join(self.chunks)

    def pieces(self) -> list[bytes]:
        """The rows as buffers to write one after another: the chunks and newlines."""
        pieces = [b"\n"] * (2 * len(self.chunks) - 1) if self.chunks else []
        pieces[::2] = self.chunks
        return pieces

    def rows(self) -> list[bytes]:
        return [row for chunk in self.chunks for row in chunk.split(b"\n")]


def encode_values(row: Row) -> bytes:
    """One row, from a record's values in column order, on one line."""
    identity = row[_IDENTITY_POSITION]
    if type(identity) is SharedIdentity:
        row = row.copy()
        row[_IDENTITY_POSITION] = identity.json
    data = _ENCODE(row)
    if b"\n" in data:
        # Raw bodies keep a pretty-printed sender's line breaks. Rows travel joined
        # by newlines (the spool, the INSERT), so they must hold none; in valid JSON
        # (the decoder checked it) a raw line break can only be whitespace.
        data = data.replace(b"\n", b" ")
    return data


def encode_chunk(rows: list[Row]) -> RowChunks:
    """Rows of one table (records' values in column order) as one chunk, the same
    bytes as `encode_values` gives row by row, from one encoder call for them all.

    Shared identities in `rows` are replaced by their JSON, in place.
    """
    for row in rows:
        identity = row[_IDENTITY_POSITION]
        if type(identity) is SharedIdentity:
            row[_IDENTITY_POSITION] = identity.json
    data = _ENCODE_LINES(rows)
    if data.count(b"\n") != len(rows):
        # Raw bodies with line breaks: `encode_values` takes them out row by row.
        return RowChunks.of_rows([encode_values(row) for row in rows])
    return RowChunks([data[:-1]], len(rows)) if rows else RowChunks()


def encode_row(record: Record) -> bytes:
    return encode_values(row_from_record(record))


def insert_chunks(store: Store, table: str, rows: RowChunks) -> None:
    """Insert rows made by `encode_values`, `encode_row` or `encode_chunk`; durable when
    this returns. Written out chunk by chunk, not joined first: a join of a large
    batch would hold the interpreter lock for milliseconds."""
    store.insert_json(table, rows.pieces(), columns=ROW_COLUMNS, compact=True)


def insert_rows(store: Store, table: str, rows: list[bytes]) -> None:
    insert_chunks(store, table, RowChunks.of_rows(rows))


# INSERTs one batch may take to isolate refused rows: ~2 log2(n) per scattered
# refused row and ~2 per row of a run of them (one bad call's events lie side by
# side), so ~8 scattered rows or a run of ~100 in a batch of 30,000. Past that the
# batch fails as a whole and is retried: so many refusals mean the table itself
# is at fault (e.g. a column of another type), and its rows must not be set aside.
ISOLATING_INSERTS: Final = 256


def insert_rows_isolating(store: Store, table: str, rows: RowChunks) -> list[tuple[bytes, str]]:
    """Insert rows, setting aside those the engine refuses as data.

    One row the engine cannot read fails its whole INSERT, and retrying the
    batch would fail forever and stop ingest behind it. So a batch refused for
    its data is halved until the refused rows stand alone: every other row is
    stored, and the refused ones are returned with the engine's message. Any
    other failure (the store unreachable, out of memory), or more refusals than
    `ISOLATING_INSERTS` can isolate, raises; rows of halves stored by then are
    stored again on the retry, which the tables collapse by eventID.
    """
    try:
        insert_chunks(store, table, rows)
        return []
    except StoreDataError as exc:
        if len(rows) == 1:
            return [(rows.chunks[0], str(exc))]
    each = rows.rows()
    refused: list[tuple[bytes, str]] = []
    half = len(each) // 2
    pending = [each[half:], each[:half]]  # the first half is tried first
    inserts = 1
    while pending:
        part = pending.pop()
        inserts += 1
        try:
            insert_rows(store, table, part)
        except StoreDataError as exc:
            if inserts >= ISOLATING_INSERTS:
                raise StoreDataError(
                    f"{len(refused) + 1} or more of {len(each)} rows refused; the batch is "
                    f"retried as a whole. The store said: {exc}") from exc
            if len(part) == 1:
                refused.append((part[0], str(exc)))
            else:
                half = len(part) // 2
                pending += (part[half:], part[:half])  # the first half is tried first
    return refused
