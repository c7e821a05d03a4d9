"""A write-ahead log of encoded rows, so a call can be acknowledged before its INSERT.

Why: on chDB (and on a ClickHouse server) every INSERT writes a part, and a
part costs tens of milliseconds of CPU however few rows it holds; small
inserts also mean more merges later. Acknowledging only after the INSERT ties
the insert size to what the senders have in flight: 16 apiservers posting 100
events each give inserts of ~500 rows, at ~6,000 events/s. With the log, a
call is durable once its rows are appended and fsync'ed (one fsync serves
every call that arrived meanwhile), and inserts gather up to 60,000 rows or
half a second of them (up to 1.5 s under heavy load; see spooled_batcher.py).

Layout: numbered segment files `<seq>.wal` in one directory. Each append is
one frame:

    magic b"TWL1" | u32 payload length | u32 CRC-32 of the payload | payload

and the payload holds, per table, `u16 name length | name | u32 row count |
u32 data length | rows joined by newlines`. A segment is closed when its rows
are handed to an insert and deleted when every table of it is stored. Rows the
store refuses for their data are set aside in `refused/<table>.jsonl` (see
`Spool.set_aside`) rather than retried forever. A crash
can leave a torn last frame: it was never fsync'ed, so never acknowledged,
and replay stops there. Replay may insert rows that were already stored
before the crash; they carry the same eventIDs, which the tables collapse
(ReplacingMergeTree) and readers drop.
"""

from __future__ import annotations

import logging
import os
import struct
import threading
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Final

import orjson

from trail_operator.store.rows import RowChunks

log = logging.getLogger(__name__)

MAGIC: Final = b"TWL1"
_HEADER = struct.Struct("<4sII")
_TABLE = struct.Struct("<H")
_ROWS = struct.Struct("<II")
SUFFIX: Final = ".wal"
REFUSED_DIR: Final = "refused"


class SpoolCorruptError(ValueError):
    """A segment frame that cannot be read back; replay stops before it."""


def encode_frame(rows_by_table: dict[str, RowChunks]) -> bytes:
    parts: list[bytes] = []
    for table, rows in rows_by_table.items():
        name = table.encode()
        data = rows.joined()
        parts += (_TABLE.pack(len(name)), name, _ROWS.pack(len(rows), len(data)), data)
    payload = b"".join(parts)
    return _HEADER.pack(MAGIC, len(payload), zlib.crc32(payload)) + payload


def decode_frames(data: bytes) -> Iterator[dict[str, RowChunks]]:
    """The frames of one segment, in order; stops at a torn or damaged tail."""
    offset = 0
    while offset < len(data):
        if len(data) - offset < _HEADER.size:
            raise SpoolCorruptError(f"torn frame header at byte {offset}")
        magic, length, crc = _HEADER.unpack_from(data, offset)
        start = offset + _HEADER.size
        payload = data[start:start + length]
        if magic != MAGIC or len(payload) != length or zlib.crc32(payload) != crc:
            raise SpoolCorruptError(f"damaged or torn frame at byte {offset}")
        yield _decode_payload(payload)
        offset = start + length


def _decode_payload(payload: bytes) -> dict[str, RowChunks]:
    tables: dict[str, RowChunks] = {}
    offset = 0
    while offset < len(payload):
        (name_length,) = _TABLE.unpack_from(payload, offset)
        offset += _TABLE.size
        table = payload[offset:offset + name_length].decode()
        offset += name_length
        count, length = _ROWS.unpack_from(payload, offset)
        offset += _ROWS.size
        tables.setdefault(table, RowChunks()).add(payload[offset:offset + length], count)
        offset += length
    return tables


@dataclass
class Segment:
    """A closed segment and the rows it holds, by table, until they are stored."""

    path: Path
    rows_by_table: dict[str, RowChunks] = field(default_factory=dict)
    # time.monotonic() when its first rows were acknowledged, if known.
    opened: float | None = None

    @property
    def rows(self) -> int:
        return sum(len(rows) for rows in self.rows_by_table.values())


class Spool:
    """The segment files of one gateway.

    An append runs in a worker thread (its fsync must not stall the event loop)
    while the loop may close the segment, so both hold a lock.
    """

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        directory.mkdir(parents=True, exist_ok=True)
        existing = self._segment_paths()
        self._next_seq = (int(existing[-1].stem) + 1) if existing else 1
        self._fd: int | None = None
        self._path: Path | None = None
        self._open_rows: dict[str, RowChunks] = {}
        self._open_count = 0
        self._lock = threading.Lock()
        # Segments closed early because an append failed in them.
        self._sealed: list[Segment] = []

    def _segment_paths(self) -> list[Path]:
        paths = [p for p in self.directory.glob(f"*{SUFFIX}") if p.stem.isdigit()]
        return sorted(paths, key=lambda p: int(p.stem))

    def recover(self) -> list[Segment]:
        """Segments left by an earlier run, oldest first, with their readable frames."""
        segments = []
        for path in self._segment_paths():
            rows_by_table: dict[str, RowChunks] = {}
            try:
                for frame in decode_frames(path.read_bytes()):
                    for table, rows in frame.items():
                        rows_by_table.setdefault(table, RowChunks()).extend(rows)
            except SpoolCorruptError as exc:
                # Only an unacknowledged append can be torn: keep what precedes it.
                log.warning("spool segment %s: %s; the frames before it are replayed",
                            path.name, exc)
            segments.append(Segment(path, rows_by_table))
        return segments

    @property
    def open_rows(self) -> int:
        """Rows appended to the segment being written."""
        return self._open_count

    def append(self, rows_by_table: dict[str, RowChunks]) -> None:
        """Write and fsync one frame; the rows are durable when this returns.

        On failure (disk full, I/O error) the frame may be torn, so the segment
        is closed there: later frames go to a new one, where replay reaches them.
        """
        with self._lock:
            self._append(rows_by_table)

    def _append(self, rows_by_table: dict[str, RowChunks]) -> None:
        if self._fd is None:
            self._path = self.directory / f"{self._next_seq:012d}{SUFFIX}"
            self._next_seq += 1
            self._fd = os.open(self._path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
            _fsync_directory(self.directory)
        try:
            view = memoryview(encode_frame(rows_by_table))
            while view:
                written = os.write(self._fd, view)
                view = view[written:]
            os.fsync(self._fd)
        except OSError:
            sealed = self._close_open()
            if sealed is not None:
                self._sealed.append(sealed)
            raise
        for table, rows in rows_by_table.items():
            self._open_rows.setdefault(table, RowChunks()).extend(rows)
            self._open_count += len(rows)

    def close_segments(self) -> list[Segment]:
        """Close the segment being written and hand over its rows (and any sealed early)."""
        with self._lock:
            segments, self._sealed = self._sealed, []
            current = self._close_open()
            if current is not None:
                segments.append(current)
            return segments

    def _close_open(self) -> Segment | None:
        if self._fd is None or self._path is None:
            return None
        os.close(self._fd)
        segment = Segment(self._path, self._open_rows)
        self._fd, self._path, self._open_rows, self._open_count = None, None, {}, 0
        return segment

    def set_aside(self, table: str, refused: list[tuple[bytes, str]]) -> Path:
        """Keep rows the store refused, each with the store's reason, as JSON lines in
        `refused/<table>.jsonl`, fsync'ed, for an operator to read, fix and insert."""
        directory = self.directory / REFUSED_DIR
        directory.mkdir(exist_ok=True)
        path = directory / f"{table}.jsonl"
        at = datetime.now(UTC).isoformat(timespec="milliseconds")
        lines = b"".join(orjson.dumps({"at": at, "table": table, "reason": reason,
                                       "row": row.decode("utf-8", "replace")}) + b"\n"
                         for row, reason in refused)
        with path.open("ab") as file:
            file.write(lines)
            file.flush()
            os.fsync(file.fileno())
        return path

    def discard(self, segment: Segment) -> None:
        """Forget a segment whose rows are all stored."""
        segment.path.unlink(missing_ok=True)

    def close(self) -> None:
        """Close the file being written; its rows stay on disk for the next start."""
        with self._lock:
            if self._fd is not None:
                os.close(self._fd)
                self._fd = None


def _fsync_directory(directory: Path) -> None:
    # A new file's directory entry must be durable too, or a crash may lose the file.
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
