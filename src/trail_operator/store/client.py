"""One ClickHouse handle for both layouts: chDB in process, or a server over HTTP.

chDB allows one process per data path, so the process that owns the path
shares one `Store` among its components. A clickhouse-connect client is not
safe for concurrent calls, but several clients (on one chDB path too) are:
the store keeps a small pool, so an insert and a query, or two inserts into
different tables, run at once (two parallel inserts measured ~1.5x one).
"""

from __future__ import annotations

import contextlib
import queue
import re
import threading
from collections.abc import Mapping, Sequence
from typing import Any

import clickhouse_connect
from clickhouse_connect.driver.exceptions import ClickHouseError

from trail_operator.store.errors import StoreDataError, StoreError, StoreUnavailableError
from trail_operator.store.naming import qualified

__all__ = ["Store", "StoreDataError", "StoreError", "StoreUnavailableError"]

# Settings for every JSONEachRow insert: records carry objects for the JSON
# text columns and may carry fields the schema does not know.
JSON_INSERT_SETTINGS: Mapping[str, Any] = {
    "input_format_skip_unknown_fields": 1,
    "input_format_json_read_objects_as_strings": 1,
    "input_format_json_read_arrays_as_strings": 1,
    "input_format_json_read_numbers_as_strings": 1,
    "input_format_json_read_bools_as_strings": 1,
    "date_time_input_format": "best_effort",
    # Collapsing retried copies at insert costs ~25% of insert time; merges and
    # the readers' eventID checks collapse them anyway.
    "optimize_on_insert": 0,
    # Parallel parsing first scans the whole input to cut it into chunks, then
    # parses the chunks on other threads: the scan is extra work. Off, a
    # 30,000-row insert of audit rows took a median 18% less engine CPU (14
    # interleaved rounds) in the same wall time on 2 cores; the gateway runs two
    # inserts at once anyway.
    "input_format_parallel_parsing": 0,
}

JSON_OUTPUT_SETTINGS: Mapping[str, Any] = {
    "date_time_output_format": "iso",
    "output_format_json_named_tuples_as_objects": 1,
    "output_format_json_quote_64bit_integers": 0,
}


JSON_OUTPUT_SETTINGS_CLAUSE = ", ".join(
    f"{key} = {value!r}" if isinstance(value, str) else f"{key} = {value}"
    for key, value in JSON_OUTPUT_SETTINGS.items()
)


# Server settings of the embedded engine. Merges run at a lower CPU priority than
# the process's own work (ingest, inserts, queries): they can wait for an idle
# core, a sender or a reader cannot. Measured on 10M events: filling took 48-62 s
# instead of 83 s, the same parts after merges.
EMBEDDED_ENGINE_OPTIONS: Mapping[str, Any] = {"os_threads_nice_value_merge_mutate": 10}


# ClickHouse names its error at the end of the message, e.g. "(CANNOT_PARSE_DATETIME)",
# over HTTP and in chDB alike. These are about the data sent, not the server's state.
_DATA_ERROR = re.compile(
    r"\((CANNOT_PARSE_\w+|CANNOT_READ_\w+|TYPE_MISMATCH|INCORRECT_DATA|CANNOT_CONVERT_TYPE"
    r"|VALUE_IS_OUT_OF_RANGE_OF_DATA_TYPE|TOO_LARGE_STRING_SIZE|INCORRECT_NUMBER_OF_COLUMNS"
    r"|CANNOT_INSERT_NULL_IN_ORDINARY_COLUMN|ARGUMENT_OUT_OF_BOUND|UNKNOWN_ELEMENT_OF_ENUM)\)")


class Store:
    """A thread-safe handle on one ClickHouse (embedded chDB or a server)."""

    def __init__(
        self, dsn: str, database: str = "trail", username: str | None = None,
        password: str | None = None, pool_size: int = 2,
    ) -> None:
        self.dsn = dsn
        self.database = database
        self._credentials = {
            key: value for key, value in (("username", username), ("password", password)) if value
        }
        self.embedded = dsn.startswith("chdb://")
        self.pool_size = max(1, pool_size)
        self._idle: queue.LifoQueue[Any] = queue.LifoQueue()
        self._open = 0
        self._lock = threading.Lock()

    def _new_client(self) -> Any:
        options: dict[str, Any] = dict(self._credentials)
        if not self.embedded:
            # Sessions would serialize every call on the server side.
            options["autogenerate_session_id"] = False
        else:
            options["chdb_options"] = dict(EMBEDDED_ENGINE_OPTIONS)
        try:
            return clickhouse_connect.get_client(dsn=self.dsn, **options)
        except Exception as exc:  # the driver raises many kinds when unreachable
            raise StoreUnavailableError(
                f"cannot reach ClickHouse at {self._safe_dsn}: {exc}") from exc

    def _acquire(self) -> Any:
        with self._lock:
            try:
                return self._idle.get_nowait()
            except queue.Empty:
                if self._open < self.pool_size:
                    self._open += 1
                    grow = True
                else:
                    grow = False
        if not grow:
            return self._idle.get()
        try:
            return self._new_client()
        except BaseException:
            with self._lock:
                self._open -= 1
            raise

    def _discard(self, client: Any) -> None:
        with self._lock:
            self._open -= 1
        with contextlib.suppress(Exception):  # the connection is being abandoned anyway
            client.close()

    @property
    def _safe_dsn(self) -> str:
        # Never echo a password embedded in the DSN.
        if "@" in self.dsn and "://" in self.dsn:
            scheme, rest = self.dsn.split("://", 1)
            return f"{scheme}://***@{rest.split('@', 1)[1]}"
        return self.dsn

    def _run(self, method: str, *args: Any, **kwargs: Any) -> Any:
        client = self._acquire()
        healthy = True
        try:
            return getattr(client, method)(*args, **kwargs)
        except ClickHouseError as exc:
            if _looks_unreachable(exc):
                healthy = False
                raise StoreUnavailableError(str(exc)) from exc
            if _DATA_ERROR.search(str(exc)):
                raise StoreDataError(str(exc)) from exc
            raise StoreError(str(exc)) from exc
        except OSError as exc:
            healthy = False
            raise StoreUnavailableError(f"ClickHouse at {self._safe_dsn}: {exc}") from exc
        finally:
            if healthy:
                self._idle.put(client)
            else:
                self._discard(client)

    def command(
        self, sql: str, parameters: Mapping[str, Any] | None = None,
        settings: Mapping[str, Any] | None = None,
    ) -> Any:
        return self._run("command", sql, parameters=parameters, settings=settings)

    def rows(
        self, sql: str, parameters: Mapping[str, Any] | None = None,
        settings: Mapping[str, Any] | None = None,
    ) -> list[tuple[Any, ...]]:
        result = self._run("query", sql, parameters=parameters, settings=settings)
        return list(result.result_rows)

    def raw_inline(self, sql: str, fmt: str = "JSONEachRow",
                   parameters: Mapping[str, Any] | None = None) -> bytes:
        """Like `raw`, for SQL that carries `JSON_OUTPUT_SETTINGS_CLAUSE` in its own SETTINGS.

        Settings passed per call cost a SET and a restore around the query on
        chDB (~10 ms), which is most of a fast lookup's time.
        """
        return bytes(self._run("raw_query", sql, parameters=parameters, fmt=fmt))

    def raw(
        self, sql: str, fmt: str = "JSONEachRow", parameters: Mapping[str, Any] | None = None,
        settings: Mapping[str, Any] | None = None,
    ) -> bytes:
        # Per call, not per client, though on chDB that costs a SET and a restore
        # (~10 ms): with client-wide settings, the output of a query the engine
        # aborted (e.g. a memory limit) leaked into the next result on that client.
        merged = {**JSON_OUTPUT_SETTINGS, **(settings or {})}
        data = self._run("raw_query", sql, parameters=parameters, settings=merged, fmt=fmt)
        return bytes(data)

    def insert_json_each_row(self, table: str, data: bytes, columns: Sequence[str] = ()) -> None:
        """Insert newline-separated JSON objects into `database.table`; durable on return."""
        self.insert_json(table, data, columns)

    def insert_json(self, table: str, data: bytes | Sequence[bytes], columns: Sequence[str] = (),
                    compact: bool = False) -> None:
        """Insert JSON rows (objects, or arrays in `columns` order when `compact`).

        `data` is the rows, or buffers that make them when written one after another.
        """
        if not data:
            return
        if not self.embedded and not isinstance(data, bytes):
            # Over HTTP a list would go out as a chunked body, a chunk per buffer.
            data = b"".join(data)
        self._run(
            "raw_insert", qualified(self.database, table), column_names=list(columns) or None,
            insert_block=data, settings=dict(JSON_INSERT_SETTINGS),
            fmt="JSONCompactEachRow" if compact else "JSONEachRow",
        )

    def ping(self) -> bool:
        try:
            self.rows("SELECT 1")
        except StoreError:
            return False
        return True

    def close(self) -> None:
        while True:
            try:
                client = self._idle.get_nowait()
            except queue.Empty:
                return
            self._discard(client)


def _looks_unreachable(exc: ClickHouseError) -> bool:
    text = str(exc).lower()
    return any(
        marker in text
        for marker in ("connection refused", "failed to connect", "timed out", "max retries")
    )
