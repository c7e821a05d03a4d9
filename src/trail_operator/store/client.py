"""One ClickHouse client for both layouts: chDB in process, or a server over HTTP.

chDB allows one process per data path and its session is not safe for
concurrent calls, so calls are serialized behind a lock and the process that
owns the path shares this one object among its components. Over HTTP the lock
is per client too: clickhouse-connect clients are not meant for concurrent use.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Mapping, Sequence
from typing import Any

import clickhouse_connect
from clickhouse_connect.driver.exceptions import ClickHouseError

from trail_operator.store.naming import qualified

# Settings for every JSONEachRow insert: records carry objects for the JSON
# text columns and may carry fields the schema does not know.
JSON_INSERT_SETTINGS: Mapping[str, Any] = {
    "input_format_skip_unknown_fields": 1,
    "input_format_json_read_objects_as_strings": 1,
    "input_format_json_read_arrays_as_strings": 1,
    "input_format_json_read_numbers_as_strings": 1,
    "input_format_json_read_bools_as_strings": 1,
    "date_time_input_format": "best_effort",
}

JSON_OUTPUT_SETTINGS: Mapping[str, Any] = {
    "date_time_output_format": "iso",
    "output_format_json_named_tuples_as_objects": 1,
    "output_format_json_quote_64bit_integers": 0,
}


class StoreError(RuntimeError):
    """The store refused a statement or could not be reached."""


class StoreUnavailableError(StoreError):
    """The store could not be reached; the caller should retry later."""


class Store:
    """A thread-safe handle on one ClickHouse (embedded chDB or a server)."""

    def __init__(
        self, dsn: str, database: str = "trail", username: str | None = None,
        password: str | None = None,
    ) -> None:
        self.dsn = dsn
        self.database = database
        self._credentials = {
            key: value for key, value in (("username", username), ("password", password)) if value
        }
        self.embedded = dsn.startswith("chdb://")
        self._lock = threading.Lock()
        self._client: Any = None

    def _connected(self) -> Any:
        if self._client is None:
            try:
                options: dict[str, Any] = dict(self._credentials)
                if not self.embedded:
                    # Sessions would serialize every call on the server side.
                    options["autogenerate_session_id"] = False
                self._client = clickhouse_connect.get_client(dsn=self.dsn, **options)
            except Exception as exc:  # the driver raises many kinds when unreachable
                raise StoreUnavailableError(
                    f"cannot reach ClickHouse at {self._safe_dsn}: {exc}") from exc
        return self._client

    @property
    def _safe_dsn(self) -> str:
        # Never echo a password embedded in the DSN.
        if "@" in self.dsn and "://" in self.dsn:
            scheme, rest = self.dsn.split("://", 1)
            return f"{scheme}://***@{rest.split('@', 1)[1]}"
        return self.dsn

    def _run(self, method: str, *args: Any, **kwargs: Any) -> Any:
        with self._lock:
            client = self._connected()
            try:
                return getattr(client, method)(*args, **kwargs)
            except ClickHouseError as exc:
                if _looks_unreachable(exc):
                    self._drop_client()
                    raise StoreUnavailableError(str(exc)) from exc
                raise StoreError(str(exc)) from exc
            except OSError as exc:
                self._drop_client()
                raise StoreUnavailableError(f"ClickHouse at {self._safe_dsn}: {exc}") from exc

    def _drop_client(self) -> None:
        if self._client is not None and not self.embedded:
            with contextlib.suppress(Exception):  # the connection is being abandoned anyway
                self._client.close()
            self._client = None

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

    def query_result(
        self, sql: str, parameters: Mapping[str, Any] | None = None,
        settings: Mapping[str, Any] | None = None,
    ) -> Any:
        """The driver's QueryResult (rows, column names and types, summary)."""
        return self._run("query", sql, parameters=parameters, settings=settings)

    def raw(
        self, sql: str, fmt: str = "JSONEachRow", parameters: Mapping[str, Any] | None = None,
        settings: Mapping[str, Any] | None = None,
    ) -> bytes:
        merged = {**JSON_OUTPUT_SETTINGS, **(settings or {})}
        data = self._run("raw_query", sql, parameters=parameters, settings=merged, fmt=fmt)
        return bytes(data)

    def insert_json_each_row(self, table: str, data: bytes, columns: Sequence[str] = ()) -> None:
        """Insert newline-separated JSON objects into `database.table`; durable on return."""
        if not data:
            return
        self._run(
            "raw_insert", qualified(self.database, table), column_names=list(columns) or None,
            insert_block=data, settings=dict(JSON_INSERT_SETTINGS), fmt="JSONEachRow",
        )

    def ping(self) -> bool:
        try:
            self.rows("SELECT 1")
        except StoreError:
            return False
        return True

    def close(self) -> None:
        with self._lock:
            if self._client is not None:
                try:
                    self._client.close()
                finally:
                    self._client = None


def _looks_unreachable(exc: ClickHouseError) -> bool:
    text = str(exc).lower()
    return any(
        marker in text
        for marker in ("connection refused", "failed to connect", "timed out", "max retries")
    )
