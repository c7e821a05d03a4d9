"""Lake queries: a user's SQL checked, confined to the stores they may read, and run.

`trailctl query` and the query API accept SQL from people who may read some
event data stores and nothing else. ClickHouse's own access control cannot
express "these tables of this database, read-only, no table functions" for
every caller of one shared client, so the query is checked here, on its
parsed form, before anything reaches the engine:

- exactly one statement, and it is a query (SELECT, UNION, CTEs and
  subqueries are fine); INSERT/ALTER/CREATE/DROP/SYSTEM/SET/KILL/... are
  refused from their first keyword, so even ones sqlglot cannot parse are
  refused as what they are rather than reported as syntax errors;
- every table is an event data store the caller's `resolve_table` accepts,
  wherever it appears (joins, subqueries, CTE bodies, `IN table`); CTE names
  count only where ClickHouse would resolve them to the CTE (a
  non-recursive CTE's body naming itself reaches the real table);
  `system.*` and `information_schema.*` are refused by name;
- no table functions at all (`file`, `url`, `s3`, `remote`, `numbers`, ...),
  no `SETTINGS` (a caller must not raise the limits), no `FORMAT`/`INTO
  OUTFILE`, no query parameters;
- no functions that read outside the stores or reveal the server
  (`REFUSED_FUNCTIONS`): dictionaries, Join tables, files, other tables'
  metadata, settings (`getSetting` too: limits are not the caller's
  business), host/version/users/certificates, introspection, and `sleep`.
  `currentDatabase()` and `timezone()` stay: they reveal nothing.

The SQL that runs is generated from the checked tree (comments dropped), then
parsed again and checked once more against the tables that were resolved, so
what was checked is what runs. Trino SQL is translated by `query.trino`.

Limits (`QUERY_LIMIT_SETTINGS`) ride in the query's own SETTINGS clause, not
in the client's settings: on chDB the client applies per-call settings with
`SET` and restores them afterwards, and a `readonly` applied that way could
not be restored and would leave the shared session read-only. `readonly = 1`
(not 2) works there because nothing else needs changing during the query.

Results come back in `FORMAT JSONCompact`: values are JSON already (times
ISO 8601 with `Z`), the column types come with them, and the body carries
the engine's own `statistics` (rows and bytes read, elapsed), which is where
`QueryStats` comes from. The driver's query summary would do for chDB, but
over HTTP its header is sent before the query ends unless the server is
asked to buffer the whole result; the JSON statistics are complete in both
layouts. A page is the checked query wrapped in `LIMIT page_size + 1
OFFSET ...` (one extra row says whether there is another page), so each
page re-runs the query: pages are stable when the query has an ORDER BY.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final, Literal, get_args

import orjson
import sqlglot
from sqlglot import exp
from sqlglot.errors import ErrorLevel, ParseError, TokenError, UnsupportedError

from trail_operator.query.trino import TranslationError, to_clickhouse
from trail_operator.store.client import Store, StoreError, StoreUnavailableError

Dialect = Literal["clickhouse", "trino"]
DIALECTS: Final[tuple[str, ...]] = get_args(Dialect)

MAX_QUERY_LENGTH: Final = 100_000
MAX_PAGE_SIZE: Final = 10_000

# Per-query limits. `readonly = 1` also refuses any write or settings change
# that got past the checks; it is last so it cannot refuse the clause itself.
QUERY_LIMIT_SETTINGS: Final[Mapping[str, int | str]] = {
    "max_execution_time": 60,
    "timeout_overflow_mode": "throw",
    "max_rows_to_read": 2_000_000_000,
    "max_bytes_to_read": 200 * 1024**3,
    "read_overflow_mode": "throw",
    "max_result_rows": MAX_PAGE_SIZE + 1,
    "max_result_bytes": 256 * 1024**2,
    "result_overflow_mode": "throw",
    "max_memory_usage": 2 * 1024**3,
    "allow_introspection_functions": 0,
    "readonly": 1,
}

# Settings that make the engine behave as the dialect expects. Every query
# runs in UTC, as CloudTrail Lake does. For Trino: outer joins produce NULLs,
# and a name means the column even where a SELECT alias has the same name
# (`date_trunc('hour', eventTime) AS eventTime ... GROUP BY date_trunc(...)`).
DIALECT_SETTINGS: Final[Mapping[str, Mapping[str, int | str]]] = {
    "clickhouse": {"session_timezone": "UTC"},
    "trino": {"session_timezone": "UTC", "join_use_nulls": 1, "prefer_column_name_to_alias": 1},
}

# Statements refused by their first keyword.
REFUSED_STATEMENTS: Final = frozenset(
    {
        "ALTER", "ATTACH", "BACKUP", "CHECK", "CREATE", "DELETE", "DESC", "DESCRIBE",
        "DETACH", "DROP", "EXCHANGE", "EXISTS", "EXPLAIN", "GRANT", "INSERT", "KILL",
        "MERGE", "MOVE", "OPTIMIZE", "RENAME", "REPLACE", "RESTORE", "REVOKE", "SET",
        "SHOW", "SYSTEM", "TRUNCATE", "UNDROP", "UPDATE", "UPSERT", "USE", "WATCH",
        "BEGIN", "COMMIT", "ROLLBACK", "CALL", "EXECUTE", "COPY", "LOAD", "PREPARE",
    }
)  # fmt: skip

_TABLES_OF_THE_SERVER: Final = frozenset({"system", "information_schema"})

_READS_OUTSIDE = "it reads data outside the event data stores"
_REVEALS_SERVER = "it reveals the server's configuration or identity"

# Function names (lower case) refused anywhere in a query, with the reason.
REFUSED_FUNCTIONS: Final[Mapping[str, str]] = {
    **dict.fromkeys(
        (
            "file", "url", "s3", "hdfs", "remote", "remotesecure", "mysql", "postgresql",
            "jdbc", "odbc", "input", "executable", "cluster", "clusterallreplicas",
            "hascolumnintable", "catboostevaluate", "modelevaluate", "naivebayesclassifier",
        ),
        _READS_OUTSIDE,
    ),
    **dict.fromkeys(
        (
            "getsetting", "getsettingordefault", "getserversetting", "getmergetreesetting",
            "getmacro", "hostname", "fqdn", "tcpport", "getserverport", "serveruuid",
            "uptime", "version", "revision", "buildid", "getoskernelversion", "displayname",
            "currentuser", "current_user", "user", "session_user", "currentroles",
            "enabledroles", "defaultroles", "currentprofiles", "enabledprofiles",
            "defaultprofiles", "currentschemas", "current_schemas", "getclienthttpheader",
            "showcertificate", "zookeepersessionuptime", "filesystemavailable",
            "filesystemfree", "filesystemcapacity", "filesystemunreserved", "globalvariable",
            "queryid", "query_id", "initialqueryid", "initial_query_id",
            "initialquerystarttime", "connectionid", "connection_id", "shardnum",
            "shardcount", "transactionid", "transactionlatestsnapshot",
            "transactionoldestsnapshot",
        ),
        _REVEALS_SERVER,
    ),
    **dict.fromkeys(
        ("addresstoline", "addresstolinewithinlines", "addresstosymbol", "demangle", "trap"),
        "it inspects the server's memory",
    ),
    **dict.fromkeys(("sleep", "sleepeachrow"), "it only holds the shared engine busy"),
}  # fmt: skip

# Prefixes of function families refused as a whole.
REFUSED_FUNCTION_PREFIXES: Final[Mapping[str, str]] = {
    "dict": f"{_READS_OUTSIDE} (a dictionary)",
    "joinget": f"{_READS_OUTSIDE} (a Join table)",
    "filesystem": _REVEALS_SERVER,
}

# ClickHouse error names that mean a limit was hit, and what to tell the caller.
_NARROW = "narrow the time range (WHERE eventTime > ...), filter more, or aggregate"
LIMIT_ERRORS: Final[Mapping[str, str]] = {
    "TIMEOUT_EXCEEDED": "the query ran longer than {max_execution_time} s; " + _NARROW,
    "TOO_SLOW": "the query would run longer than {max_execution_time} s; " + _NARROW,
    "TOO_MANY_ROWS": "the query would read more than {max_rows_to_read} rows; " + _NARROW,
    "TOO_MANY_BYTES": "the query would read more than {max_bytes_to_read}; " + _NARROW,
    "TOO_MANY_ROWS_OR_BYTES": "the result is larger than {max_result_rows} rows or"
    " {max_result_bytes}; select fewer rows or columns",
    "MEMORY_LIMIT_EXCEEDED": "the query needs more than {max_memory_usage} of memory;"
    " group by fewer keys, select fewer columns, or " + _NARROW,
    "TOO_BIG_AST": "the query is too large; simplify it",
    "TOO_DEEP_AST": "the query is nested too deeply; simplify it",
    "TOO_DEEP_SUBQUERIES": "the query nests too many subqueries; simplify it",
    "TOO_DEEP_RECURSION": "the query recurses too deeply; simplify it",
    "TOO_MANY_COLUMNS": "the query uses too many columns; select fewer",
    "TOO_MANY_TEMPORARY_COLUMNS": "the query computes too many columns at once; simplify it",
    "TOO_MANY_TEMPORARY_NON_CONST_COLUMNS": "the query computes too many columns; simplify it",
    "SET_SIZE_LIMIT_EXCEEDED": "an IN set is too large; filter more",
    "QUERY_IS_TOO_LARGE": "the query text is too large; simplify it",
    "QUERY_WAS_CANCELLED": "the query was cancelled",
}

_ERROR_NAME = re.compile(r"\(([A-Z][A-Z0-9_]{2,})\)")
_UUID_AFTER_FROM = re.compile(
    r"(\s+)([0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12})(?![\w-])"
)


class QueryError(Exception):
    """A Lake query that could not be run; the message is meant for the person who wrote it."""


class QuerySyntaxError(QueryError):
    """The query does not parse; `line`/`column` are 1-based when known."""

    def __init__(self, message: str, line: int | None = None, column: int | None = None) -> None:
        super().__init__(message)
        self.line = line
        self.column = column


class QueryRejectedError(QueryError):
    """The query parses but asks for something a Lake query may not do."""


class UnknownTableError(QueryRejectedError):
    """A table that is not an event data store the caller may read."""

    def __init__(self, ref: str) -> None:
        super().__init__(
            f"table {ref!r} is not an event data store you can query: name a store as"
            ' "<namespace>/<name>" (double quotes in Trino, backticks in ClickHouse),'
            " by its table name, or by its uid"
        )
        self.ref = ref


class QueryLimitError(QueryError):
    """The engine stopped the query at one of `QUERY_LIMIT_SETTINGS`."""

    def __init__(self, message: str, limit: str) -> None:
        super().__init__(message)
        self.limit = limit


class QueryExecutionError(QueryError):
    """The engine refused the query (unknown column, wrong types, ...)."""


class InvalidPageError(QueryError, ValueError):
    """page or page_size out of range."""


@dataclass(frozen=True)
class ResolvedTable:
    """A store named in a query: the reference as written and its physical table."""

    ref: str
    table: str


@dataclass(frozen=True)
class PreparedQuery:
    """A checked query: ClickHouse SQL over `database`.`table` references only."""

    sql: str
    tables: list[ResolvedTable]
    dialect: Dialect
    database: str


@dataclass(frozen=True)
class QueryStats:
    """What the engine reported for the run (JSON format `statistics`)."""

    rows_scanned: int
    bytes_scanned: int
    elapsed_ms: float


@dataclass(frozen=True)
class ResultColumn:
    name: str
    type: str


@dataclass(frozen=True)
class QueryResult:
    """One page of results; values are JSON values (times as ISO 8601 with `Z`)."""

    columns: list[ResultColumn]
    rows: list[list[Any]]
    stats: QueryStats
    page: int
    page_size: int
    has_more: bool = False
    tables: list[ResolvedTable] = field(default_factory=list)


def prepare_query(
    sql: str,
    dialect: Dialect,
    resolve_table: Callable[[str], str | None],
    database: str,
) -> PreparedQuery:
    """Check `sql` and rewrite it to ClickHouse SQL over the resolved stores.

    `resolve_table(ref)` gets each table reference as written (`ns/name`, a
    table name, a uid) and returns the physical table in `database` the caller
    may read, or None. Raises QuerySyntaxError, QueryRejectedError (and its
    UnknownTableError); nothing here touches the engine.
    """
    if dialect not in DIALECTS:
        raise ValueError(f"dialect must be one of {', '.join(DIALECTS)}, got {dialect!r}")
    if not sql.strip():
        raise QuerySyntaxError("the query is empty")
    if len(sql) > MAX_QUERY_LENGTH:
        raise QueryRejectedError(
            f"the query is {len(sql)} characters long; at most {MAX_QUERY_LENGTH} are accepted"
        )
    try:
        return _prepare(sql, dialect, resolve_table, database)
    except RecursionError:
        raise QueryRejectedError("the query is nested too deeply to check; simplify it") from None


def _prepare(
    sql: str,
    dialect: Dialect,
    resolve_table: Callable[[str], str | None],
    database: str,
) -> PreparedQuery:
    tokens = _tokenize(sql, dialect)
    _check_statements(tokens)
    sql = _quote_bare_uuid_tables(sql, tokens, dialect)
    tree: exp.Expr = _parse_one_query(sql, dialect)
    # Trino's `(VALUES ...) AS t(a)` becomes a UNION of SELECTs; the check of
    # the generated SQL refuses any VALUES that is left.
    _check_query_shape(tree, values_are_a_table_function=dialect == "clickhouse")
    if dialect == "trino":
        try:
            tree = to_clickhouse(tree)
        except TranslationError as exc:
            raise QueryRejectedError(f"cannot translate this Trino SQL: {exc}") from None
    tables = _resolve_tables(tree, resolve_table, database)
    _check_functions(tree)
    try:
        generated = tree.sql(
            dialect="clickhouse", comments=False, unsupported_level=ErrorLevel.RAISE
        )
    except UnsupportedError as exc:
        raise QueryRejectedError(f"cannot run this as ClickHouse SQL: {exc}") from None
    _verify_generated(generated, database, {t.table for t in tables})
    return PreparedQuery(sql=generated, tables=tables, dialect=dialect, database=database)


def run_query(
    store: Store, prepared: PreparedQuery, page_size: int = 100, page: int = 1
) -> QueryResult:
    """Run one page (1-based) of a prepared query under `QUERY_LIMIT_SETTINGS`.

    Each page re-runs the query with LIMIT/OFFSET: give it an ORDER BY for
    pages to be stable. Raises QueryLimitError, QuerySyntaxError (for what
    only the engine catches), QueryExecutionError; StoreUnavailableError
    passes through for the caller to retry.
    """
    if isinstance(page_size, bool) or not isinstance(page_size, int):
        raise InvalidPageError(f"page_size must be an integer, got {page_size!r}")
    if not 1 <= page_size <= MAX_PAGE_SIZE:
        raise InvalidPageError(f"page_size must be from 1 to {MAX_PAGE_SIZE}, got {page_size}")
    if isinstance(page, bool) or not isinstance(page, int) or page < 1:
        raise InvalidPageError(f"page must be an integer from 1, got {page!r}")
    settings = {**DIALECT_SETTINGS[prepared.dialect], **QUERY_LIMIT_SETTINGS}
    # The checked query, whole, inside our own LIMIT and SETTINGS: wrapping
    # cannot change what it reads, and the clause is built from our values.
    sql = (
        f"SELECT * FROM ({prepared.sql})"
        f" LIMIT {page_size + 1} OFFSET {(page - 1) * page_size}"
        f" SETTINGS {_settings_clause(settings)}"
    )
    try:
        data = store.raw(sql, fmt="JSONCompact")
    except StoreUnavailableError:
        raise
    except StoreError as exc:
        raise _engine_error(str(exc), prepared) from None
    body = orjson.loads(data)
    statistics = body.get("statistics") or {}
    rows: list[list[Any]] = body.get("data") or []
    return QueryResult(
        columns=[ResultColumn(str(c["name"]), str(c["type"])) for c in body.get("meta") or []],
        rows=rows[:page_size],
        stats=QueryStats(
            rows_scanned=int(statistics.get("rows_read", 0)),
            bytes_scanned=int(statistics.get("bytes_read", 0)),
            elapsed_ms=round(float(statistics.get("elapsed", 0.0)) * 1000, 3),
        ),
        page=page,
        page_size=page_size,
        has_more=len(rows) > page_size,
        tables=list(prepared.tables),
    )


# --- tokens and statements ----------------------------------------------------


def _tokenize(sql: str, dialect: Dialect) -> list[Any]:
    try:
        return list(sqlglot.Dialect.get_or_raise(dialect).tokenize(sql))
    except TokenError as exc:
        cause = exc.__cause__ if isinstance(exc.__cause__, TokenError) else exc
        message = str(cause)
        line = column = None
        where = re.search(r"from (\d+):(\d+)", message)
        if where:
            line = int(where.group(1))
            offset = int(where.group(2))
            column = offset - sql.rfind("\n", 0, offset)
            message = message[: where.start()].strip()
        raise QuerySyntaxError(
            f"syntax error{_at(line, column)}: {message or 'cannot read the query'}",
            line,
            column,
        ) from None


def _at(line: int | None, column: int | None) -> str:
    return f" at line {line}, column {column}" if line is not None else ""


def _check_statements(tokens: list[Any]) -> None:
    statements: list[list[Any]] = [[]]
    for token in tokens:
        if token.token_type == sqlglot.TokenType.SEMICOLON:
            statements.append([])
        else:
            statements[-1].append(token)
    statements = [s for s in statements if s]
    for statement in statements:
        keyword = statement[0].text.upper()
        if keyword in REFUSED_STATEMENTS:
            raise QueryRejectedError(
                f"{keyword} statements are refused: only a single read-only query"
                " (SELECT, with UNION, CTEs and subqueries) can be run"
            )
        for first, second in itertools.pairwise(statement):
            if first.token_type == sqlglot.TokenType.INTO and second.text.upper() == "OUTFILE":
                raise QueryRejectedError(
                    "INTO OUTFILE is refused: queries cannot write files; results come back"
                    " to you as JSON"
                )
    if len(statements) > 1:
        raise QueryRejectedError(
            f"the text holds {len(statements)} statements; send exactly one query"
        )


def _quote_bare_uuid_tables(sql: str, tokens: list[Any], dialect: Dialect) -> str:
    """Quote a store uid written bare after FROM/JOIN, as CloudTrail Lake's `FROM <id>`."""
    quote = '"' if dialect == "trino" else "`"
    edits: list[tuple[int, int, str]] = []
    for token in tokens:
        if token.token_type in (sqlglot.TokenType.FROM, sqlglot.TokenType.JOIN):
            match = _UUID_AFTER_FROM.match(sql, token.end + 1)
            if match:
                edits.append((match.start(2), match.end(2), f"{quote}{match.group(2)}{quote}"))
    for start, end, text in reversed(edits):
        sql = sql[:start] + text + sql[end:]
    return sql


def _parse_one_query(sql: str, dialect: Dialect) -> exp.Query:
    try:
        statements = [s for s in sqlglot.parse(sql, read=dialect) if s is not None]
    except ParseError as exc:
        detail = exc.errors[0] if exc.errors else {}
        line, column = detail.get("line"), detail.get("col")
        description = re.sub(
            r"<class '[\w.]+\.(\w+)'>", r"\1", detail.get("description") or "cannot parse"
        )
        near = detail.get("highlight")
        suffix = f" (near {near!r})" if near else ""
        raise QuerySyntaxError(
            f"syntax error{_at(line, column)}: {description}{suffix}", line, column
        ) from None
    except TokenError as exc:
        raise QuerySyntaxError(f"syntax error: {exc}") from None
    if len(statements) != 1:
        raise QueryRejectedError(
            f"the text holds {len(statements)} statements; send exactly one query"
        )
    root = statements[0]
    if not isinstance(root, exp.Query):
        raise QueryRejectedError(
            f"{_statement_name(root)} statements are refused: only a single read-only query"
            " (SELECT, with UNION, CTEs and subqueries) can be run"
        )
    return root


def _statement_name(node: exp.Expr) -> str:
    if isinstance(node, exp.Command):
        return str(node.this).upper()
    return node.key.upper()


# Statement kinds refused even when nested somewhere inside a query.
_REFUSED_NODES: Final = tuple(
    getattr(exp, name)
    for name in (
        "DDL", "DML", "Command", "Set", "Use", "Kill", "Grant", "Revoke", "Describe", "Show",
        "TruncateTable", "Transaction", "Commit", "Rollback", "Pragma", "Copy", "Analyze",
        "Attach", "Detach", "Merge", "Insert", "Update", "Delete", "Create", "Drop", "Alter",
        "LoadData", "Cache", "Uncache", "Refresh", "Summarize", "Declare", "Execute",
    )
    if hasattr(exp, name)
)  # fmt: skip


def _check_query_shape(tree: exp.Expr, values_are_a_table_function: bool) -> None:
    for node in tree.walk():
        if isinstance(node, _REFUSED_NODES):
            raise QueryRejectedError(
                f"{_statement_name(node)} is refused inside a query: only reading is allowed"
            )
        if isinstance(node, exp.Query):
            if node.args.get("settings"):
                raise QueryRejectedError(
                    "SETTINGS clauses are refused: the limits of a Lake query are fixed"
                )
            if node.args.get("format"):
                raise QueryRejectedError(
                    "FORMAT clauses are refused: results always come back as JSON"
                )
            if node.args.get("into"):
                raise QueryRejectedError("SELECT ... INTO is refused: queries cannot create tables")
        if isinstance(node, exp.Placeholder | exp.Parameter | exp.SessionParameter):
            raise QueryRejectedError(
                f"query parameters ({node.sql(dialect='clickhouse')}) are not supported:"
                " write the values into the query"
            )
        if isinstance(node, exp.In):
            _check_in(node)
        if isinstance(node, exp.Values) and values_are_a_table_function:
            # ClickHouse runs VALUES rows as the `values` table function.
            raise QueryRejectedError(
                "table function values() is refused: a query can read only event data stores"
            )


def _check_in(node: exp.In) -> None:
    # ClickHouse reads `x IN t` and `x IN (t)` as "in the rows of table t".
    bare = node.args.get("field")
    if bare is None and len(node.expressions) == 1 and isinstance(node.expressions[0], exp.Column):
        bare = node.expressions[0]
    if bare is not None:
        raise QueryRejectedError(
            f"IN {bare.sql(dialect='clickhouse')} is refused: ClickHouse would read it as a"
            " table; use IN (SELECT ...) or a list of values"
        )


# --- functions ----------------------------------------------------------------


def _typed_refusals() -> dict[type[exp.Expr], tuple[str, str]]:
    """sqlglot classes that refused names parse into (`version()` is CurrentVersion).

    Names are checked on the parsed tree, and sqlglot turns some function
    names into their own expression classes instead of Anonymous; this finds
    those classes by parsing each refused name once, as the ClickHouse check
    of the final SQL will.
    """
    typed: dict[type[exp.Expr], tuple[str, str]] = {}
    for name, reason in REFUSED_FUNCTIONS.items():
        for arguments in ("", "'a'", "'a', 'b'", "'a', 'b', 'c'"):
            try:
                node = sqlglot.parse_one(f"SELECT {name}({arguments})", read="clickhouse")
            except sqlglot.errors.SqlglotError:
                continue
            call = node.expressions[0] if isinstance(node, exp.Select) else None
            if isinstance(call, exp.Func) and not isinstance(call, exp.Anonymous):
                typed[type(call)] = (name, reason)
            break
    return typed


_TYPED_REFUSALS: Final = _typed_refusals()


def _refusal(node: exp.Func) -> tuple[str, str] | None:
    """(name, reason) when calling `node` is refused."""
    if isinstance(node, exp.Anonymous):
        name = str(node.name)
        reason = _refusal_reason(name)
        return (name, reason) if reason else None
    return _TYPED_REFUSALS.get(type(node))


def _check_functions(tree: exp.Expr) -> None:
    for node in tree.find_all(exp.Func):
        refusal = _refusal(node)
        if refusal:
            name, reason = refusal
            raise QueryRejectedError(f"function {name}() is refused: {reason}")


def _refusal_reason(name: str) -> str | None:
    lowered = name.lower()
    if lowered in REFUSED_FUNCTIONS:
        return REFUSED_FUNCTIONS[lowered]
    for prefix, reason in REFUSED_FUNCTION_PREFIXES.items():
        if lowered.startswith(prefix):
            return reason
    return None


# --- tables -------------------------------------------------------------------


def _table_ctes(ctes: Iterable[exp.Expr]) -> list[str]:
    """Names of the CTEs that are tables (`WITH 1 AS x` names a value, not a table)."""
    return [cte.alias for cte in ctes if isinstance(cte, exp.CTE) and not cte.args.get("scalar")]


def _visible_ctes(node: exp.Expr) -> set[str]:
    """Names that resolve to a CTE (not to a table) where `node` stands."""
    visible: set[str] = set()
    child, parent = node, node.parent
    while parent is not None:
        if isinstance(parent, exp.With) and isinstance(child, exp.CTE):
            if parent.args.get("recursive"):
                visible.update(_table_ctes(parent.expressions))
            else:
                # A CTE sees the ones before it; its own name is a table there.
                visible.update(_table_ctes(parent.expressions[: child.index or 0]))
        else:
            with_ = parent.args.get("with_")
            if isinstance(with_, exp.With) and child is not with_:
                visible.update(_table_ctes(with_.expressions))
        child, parent = parent, parent.parent
    return visible


def _table_function_name(table: exp.Table) -> str:
    target = table.this
    if isinstance(target, exp.Anonymous):
        return str(target.name)
    if isinstance(target, exp.Func):
        return str(target.sql_name())
    return target.sql(dialect="clickhouse") if isinstance(target, exp.Expr) else str(target)


def _resolve_tables(
    tree: exp.Expr, resolve_table: Callable[[str], str | None], database: str
) -> list[ResolvedTable]:
    resolved: list[ResolvedTable] = []
    for table in list(tree.find_all(exp.Table)):
        if not isinstance(table.this, exp.Identifier):
            raise QueryRejectedError(
                f"table function {_table_function_name(table)}() is refused: a query can read"
                " only event data stores, not files, URLs, other servers or generated tables"
            )
        name = table.name
        db = table.text("db")
        if table.args.get("catalog"):
            raise UnknownTableError(table.sql(dialect="clickhouse"))
        if db.lower() in _TABLES_OF_THE_SERVER:
            raise QueryRejectedError(
                f"{db}.{name} is refused: the server's own tables (system.*,"
                " information_schema.*) are not queryable; only event data stores are"
            )
        if not db and name in _visible_ctes(table):
            continue
        if not db:
            candidates = [name]
        elif db == database:
            candidates = [name, f"{db}/{name}"]
        else:
            candidates = [f"{db}/{name}"]
        physical = next((t for t in (resolve_table(c) for c in candidates) if t), None)
        ref = f"{db}/{name}" if db and db != database else name
        if physical is None:
            raise UnknownTableError(f"{db}.{name}" if db else name)
        table.set("this", exp.to_identifier(physical, quoted=True))
        table.set("db", exp.to_identifier(database, quoted=True))
        if not table.alias and ref != physical:
            # Columns qualified by the name as written keep resolving.
            table.set("alias", exp.TableAlias(this=exp.to_identifier(ref, quoted=True)))
        entry = ResolvedTable(ref=ref, table=physical)
        if entry not in resolved:
            resolved.append(entry)
    return resolved


def _verify_generated(sql: str, database: str, allowed: set[str]) -> None:
    """Parse the SQL about to run and check it again, against the resolved tables only."""
    try:
        tree = _parse_one_query(sql, "clickhouse")
        _check_query_shape(tree, values_are_a_table_function=True)
        _check_functions(tree)
    except QueryError as exc:
        raise QueryRejectedError(f"the translated query failed its safety check: {exc}") from None
    for table in tree.find_all(exp.Table):
        if not isinstance(table.this, exp.Identifier) or table.args.get("catalog"):
            raise QueryRejectedError("the translated query failed its safety check: table function")
        db = table.text("db")
        if db:
            if db != database or table.name not in allowed:
                raise QueryRejectedError(
                    f"the translated query failed its safety check: table {db}.{table.name}"
                )
        elif table.name not in _visible_ctes(table):
            raise QueryRejectedError(
                f"the translated query failed its safety check: table {table.name}"
            )


# --- running ------------------------------------------------------------------


def _settings_clause(settings: Mapping[str, int | float | str]) -> str:
    parts = []
    for name, value in settings.items():
        if not re.fullmatch(r"[a-z_]+", name):
            raise ValueError(f"bad setting name {name!r}")
        if isinstance(value, int | float):
            parts.append(f"{name} = {value}")
        else:
            escaped = value.replace("\\", "\\\\").replace("'", "\\'")
            parts.append(f"{name} = '{escaped}'")
    return ", ".join(parts)


def _engine_error(message: str, prepared: PreparedQuery) -> QueryError:
    lines = message.strip().splitlines() or ["the engine refused the query"]
    first_line = lines[0]
    text = first_line.split(" Stack trace", 1)[0]
    text = re.sub(r"^Code: \d+\. (DB::Exception: )?", "", text)
    text = _with_refs(text, prepared.tables, prepared.database)
    names = _ERROR_NAME.findall(first_line)
    name = names[-1] if names else ""
    if name in LIMIT_ERRORS:
        limits = {k: _describe_limit(k, v) for k, v in QUERY_LIMIT_SETTINGS.items()}
        advice = LIMIT_ERRORS[name].format(**limits)
        return QueryLimitError(f"query limit reached ({name}): {advice}", name)
    if name == "SYNTAX_ERROR":
        # Positions refer to the SQL as translated, so show that SQL.
        where = text.split(" (line ", 1)[0]
        return QuerySyntaxError(f"{where}, in the query as run: {prepared.sql}")
    if name == "READONLY":
        return QueryRejectedError(f"the query tried to change something: {text}")
    return QueryExecutionError(text)


def _describe_limit(name: str, value: int | str) -> str:
    if not isinstance(value, int):
        return str(value)
    if name.endswith("_bytes") or name.endswith("bytes_to_read") or name == "max_memory_usage":
        for unit, size in (("GiB", 1024**3), ("MiB", 1024**2), ("KiB", 1024)):
            if value >= size:
                return f"{value / size:g} {unit}"
        return f"{value} bytes"
    return f"{value:,}"


def _with_refs(text: str, tables: Iterable[ResolvedTable], database: str) -> str:
    """Engine messages name physical tables; the caller knows the stores by their refs."""
    for entry in sorted(tables, key=lambda t: len(t.table), reverse=True):
        for spelling in (
            f"`{database}`.`{entry.table}`",
            f"{database}.{entry.table}",
            f"`{entry.table}`",
            entry.table,
        ):
            text = text.replace(spelling, entry.ref)
    return text
