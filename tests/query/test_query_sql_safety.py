"""What a Lake query may not do, each refused on the parsed query before the engine sees it."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest

from trail_operator.query.sql import (
    PreparedQuery,
    QueryExecutionError,
    QueryRejectedError,
    QuerySyntaxError,
    UnknownTableError,
    prepare_query,
    run_query,
)
from trail_operator.store.client import Store

DATABASE = "trail"
MY_UID = "7d0c3f4e-1b2a-4c5d-8e9f-0a1b2c3d4e5f"


@dataclass(frozen=True)
class Tenants:
    mine: str  # physical table of team-a/audit, the caller's store
    other: str  # physical table of team-b/audit, someone else's

    def resolve(self, ref: str) -> str | None:
        """The caller (team-a) may read only its own store, named any of three ways."""
        return self.mine if ref in ("team-a/audit", self.mine, MY_UID) else None


@pytest.fixture(scope="module")
def tenants(make_table: Callable[..., str], events: Any) -> Tenants:
    return Tenants(
        mine=make_table(events.generate(40, seed=11)),
        other=make_table(events.generate(40, seed=12)),
    )


def prepare(tenants: Tenants, sql: str, dialect: str = "clickhouse") -> PreparedQuery:
    return prepare_query(sql, dialect, tenants.resolve, DATABASE)  # type: ignore[arg-type]


def refused(tenants: Tenants, sql: str, dialect: str = "clickhouse") -> str:
    with pytest.raises(QueryRejectedError) as raised:
        prepare(tenants, sql, dialect)
    return str(raised.value)


def count(store: Store, table: str) -> int:
    return int(store.rows(f"SELECT count() FROM `{DATABASE}`.`{table}`")[0][0])


# --- statements ---------------------------------------------------------------


def test_insert_is_refused_before_reaching_the_engine(query_store: Store, tenants: Tenants) -> None:
    before = count(query_store, tenants.mine)
    message = refused(tenants, "INSERT INTO `team-a/audit` (eventName) VALUES ('x')")
    assert "INSERT statements are refused" in message
    assert count(query_store, tenants.mine) == before


@pytest.mark.parametrize(
    ("sql", "keyword"),
    [
        ("ALTER TABLE `team-a/audit` DELETE WHERE 1", "ALTER"),
        ("CREATE TABLE x (a Int8) ENGINE = Memory", "CREATE"),
        ("DROP TABLE `team-a/audit`", "DROP"),
        ("SYSTEM DROP MARK CACHE", "SYSTEM"),
        ("SET max_execution_time = 100000", "SET"),
        ("ATTACH TABLE x", "ATTACH"),
        ("DETACH TABLE `team-a/audit`", "DETACH"),
        ("OPTIMIZE TABLE `team-a/audit` FINAL", "OPTIMIZE"),
        ("KILL QUERY WHERE 1", "KILL"),
        ("GRANT ALL ON *.* TO default", "GRANT"),
        ("TRUNCATE TABLE `team-a/audit`", "TRUNCATE"),
        ("RENAME TABLE a TO b", "RENAME"),
        ("DELETE FROM `team-a/audit` WHERE 1", "DELETE"),
        ("UPDATE `team-a/audit` SET eventName = 'x' WHERE 1", "UPDATE"),
        ("USE system", "USE"),
        ("SHOW TABLES", "SHOW"),
        ("DESCRIBE TABLE `team-a/audit`", "DESCRIBE"),
        ("EXPLAIN SELECT 1", "EXPLAIN"),
    ],
    ids=lambda value: value if " " not in value else None,
)
def test_statements_other_than_a_query_are_refused_by_their_keyword(
    tenants: Tenants, sql: str, keyword: str
) -> None:
    assert f"{keyword} statements are refused" in refused(tenants, sql)


def test_alter_is_refused(tenants: Tenants) -> None:
    assert "ALTER" in refused(tenants, "alter table `team-a/audit` drop column eventName")


def test_system_statement_is_refused(tenants: Tenants) -> None:
    assert "SYSTEM" in refused(tenants, "SYSTEM SHUTDOWN")


def test_set_is_refused(tenants: Tenants) -> None:
    assert "SET" in refused(tenants, "SET readonly = 0")


def test_second_statement_after_a_select_is_refused(tenants: Tenants) -> None:
    message = refused(tenants, "SELECT 1 FROM `team-a/audit`; DROP TABLE `team-a/audit`")
    assert "DROP" in message


def test_two_selects_are_refused(tenants: Tenants) -> None:
    assert "2 statements" in refused(tenants, "SELECT 1; SELECT 2")


def test_trailing_semicolon_is_fine(tenants: Tenants) -> None:
    assert prepare(tenants, "SELECT count() FROM `team-a/audit`;").tables


def test_into_outfile_is_refused(tenants: Tenants) -> None:
    message = refused(tenants, "SELECT * FROM `team-a/audit` INTO OUTFILE '/tmp/events.csv'")
    assert "INTO OUTFILE is refused" in message


def test_format_clause_is_refused(tenants: Tenants) -> None:
    assert "FORMAT" in refused(tenants, "SELECT * FROM `team-a/audit` FORMAT CSV")


def test_settings_clause_is_refused(tenants: Tenants) -> None:
    message = refused(tenants, "SELECT * FROM `team-a/audit` SETTINGS max_execution_time = 0")
    assert "SETTINGS clauses are refused" in message


def test_settings_clause_in_a_subquery_is_refused(tenants: Tenants) -> None:
    sql = "SELECT * FROM (SELECT * FROM `team-a/audit` SETTINGS max_rows_to_read = 0)"
    assert "SETTINGS" in refused(tenants, sql)


def test_query_parameters_are_refused(tenants: Tenants) -> None:
    assert "parameters" in refused(tenants, "SELECT * FROM {t:Identifier}")
    assert "parameters" in refused(tenants, "SELECT {x:String} FROM `team-a/audit`")


# --- table functions ----------------------------------------------------------


def test_table_function_url_is_refused(tenants: Tenants) -> None:
    message = refused(tenants, "SELECT * FROM url('http://169.254.169.254/latest', CSV)")
    assert "table function url() is refused" in message


def test_table_function_file_is_refused(tenants: Tenants) -> None:
    assert "table function file()" in refused(tenants, "SELECT * FROM file('/etc/passwd', CSV)")


@pytest.mark.parametrize(
    "call",
    [
        "s3('https://bucket.s3.amazonaws.com/x.csv', 'CSV')",
        "remote('127.0.0.1', system.one)",
        "remoteSecure('127.0.0.1', system.one)",
        "cluster('default', system.one)",
        "mysql('host:3306', 'db', 't', 'u', 'p')",
        "postgresql('host:5432', 'db', 't', 'u', 'p')",
        "jdbc('jdbc:x', 'db', 't')",
        "odbc('dsn', 'db', 't')",
        "hdfs('hdfs://x/y', 'CSV')",
        "input('a String')",
        "numbers(10)",
        "merge('trail', '.*')",
        "generateRandom('a Int8')",
        "executable('x.sh', 'CSV', 'a String')",
        "view(SELECT * FROM system.tables)",
        "values('a Int8', 1)",
    ],
    ids=lambda call: call.split("(")[0],
)
def test_every_table_function_is_refused(tenants: Tenants, call: str) -> None:
    name = call.split("(")[0]
    assert f"table function {name}()" in refused(tenants, f"SELECT * FROM {call}")


def test_table_function_is_refused_inside_a_join(tenants: Tenants) -> None:
    sql = "SELECT * FROM `team-a/audit` AS a JOIN numbers(10) AS n ON a.readOnly = n.number"
    assert "table function numbers()" in refused(tenants, sql)


# --- the server's tables and other tenants' stores ------------------------------


def test_system_tables_are_refused(tenants: Tenants) -> None:
    assert "system.tables is refused" in refused(tenants, "SELECT * FROM system.tables")


def test_system_tables_are_refused_inside_a_subquery(tenants: Tenants) -> None:
    sql = "SELECT eventName FROM `team-a/audit` WHERE eventName IN (SELECT name FROM system.tables)"
    assert "system.tables is refused" in refused(tenants, sql)


def test_system_tables_are_refused_inside_a_cte(tenants: Tenants) -> None:
    sql = "WITH t AS (SELECT * FROM system.settings) SELECT * FROM t"
    assert "system.settings" in refused(tenants, sql)


def test_system_tables_are_refused_through_a_join(tenants: Tenants) -> None:
    sql = "SELECT * FROM `team-a/audit` AS a JOIN system.one AS o ON 1 = 1"
    assert "system.one" in refused(tenants, sql)


def test_system_tables_are_refused_in_trino(tenants: Tenants) -> None:
    assert "system.query_log" in refused(tenants, "SELECT * FROM system.query_log", "trino")


def test_information_schema_is_refused(tenants: Tenants) -> None:
    assert "information_schema" in refused(tenants, "SELECT * FROM information_schema.tables")
    assert "INFORMATION_SCHEMA" in refused(tenants, "SELECT * FROM INFORMATION_SCHEMA.COLUMNS")


def test_other_tenants_table_is_refused(tenants: Tenants) -> None:
    with pytest.raises(UnknownTableError) as raised:
        prepare(tenants, "SELECT * FROM `team-b/audit`")
    assert raised.value.ref == "team-b/audit"
    assert "'team-b/audit' is not an event data store you can query" in str(raised.value)


def test_other_tenants_table_is_refused_through_a_join(tenants: Tenants) -> None:
    sql = (
        "SELECT a.eventName FROM `team-a/audit` AS a"
        f" JOIN {tenants.other} AS b ON a.eventID = b.eventID"
    )
    with pytest.raises(UnknownTableError, match=tenants.other):
        prepare(tenants, sql)


def test_other_tenants_table_is_refused_inside_a_subquery(tenants: Tenants) -> None:
    sql = f"SELECT * FROM (SELECT * FROM `{DATABASE}`.`{tenants.other}`)"
    with pytest.raises(UnknownTableError):
        prepare(tenants, sql)


def test_other_tenants_table_is_refused_inside_a_cte(tenants: Tenants) -> None:
    sql = 'WITH theirs AS (SELECT * FROM "team-b/audit") SELECT count(*) FROM theirs'
    with pytest.raises(UnknownTableError):
        prepare(tenants, sql, "trino")


def test_other_tenants_table_is_refused_in_a_union(tenants: Tenants) -> None:
    sql = "SELECT eventName FROM `team-a/audit` UNION ALL SELECT eventName FROM `team-b/audit`"
    with pytest.raises(UnknownTableError):
        prepare(tenants, sql)


def test_other_tenants_table_is_refused_through_an_alias_named_like_mine(
    tenants: Tenants,
) -> None:
    with pytest.raises(UnknownTableError):
        prepare(tenants, f"SELECT * FROM {tenants.other} AS `team-a/audit`")


def test_other_tenants_table_is_refused_behind_in(tenants: Tenants) -> None:
    for sql in (
        f"SELECT * FROM `team-a/audit` WHERE eventID IN {tenants.other}",
        f"SELECT * FROM `team-a/audit` WHERE eventID IN ({tenants.other})",
        "SELECT 0 IN (system.one)",
    ):
        assert "ClickHouse would read it as a table" in refused(tenants, sql)


def test_cte_named_like_another_store_cannot_read_that_store(tenants: Tenants) -> None:
    # Without RECURSIVE, the CTE's own name inside its body is the real table.
    sql = f"WITH {tenants.other} AS (SELECT * FROM {tenants.other}) SELECT * FROM {tenants.other}"
    with pytest.raises(UnknownTableError):
        prepare(tenants, sql)


def test_later_cte_cannot_be_read_by_an_earlier_one(tenants: Tenants) -> None:
    sql = (
        f"WITH a AS (SELECT * FROM {tenants.other}), {tenants.other} AS (SELECT 1) SELECT * FROM a"
    )
    with pytest.raises(UnknownTableError):
        prepare(tenants, sql)


def test_scalar_with_alias_cannot_stand_in_for_a_table(tenants: Tenants) -> None:
    with pytest.raises(UnknownTableError):
        prepare(tenants, f"WITH 1 AS {tenants.other} SELECT * FROM {tenants.other}")


def test_recursive_cte_referencing_itself_is_allowed(query_store: Store, tenants: Tenants) -> None:
    sql = (
        "WITH RECURSIVE hours AS ("
        " SELECT 1 AS h UNION ALL SELECT h + 1 FROM hours WHERE h < 24"
        ") SELECT count() FROM hours"
    )
    result = run_query(query_store, prepare(tenants, sql))
    assert result.rows == [[24]]


def test_cte_over_my_store_is_allowed(query_store: Store, tenants: Tenants) -> None:
    sql = (
        "WITH mine AS (SELECT * FROM `team-a/audit`), names AS (SELECT eventName FROM mine)"
        " SELECT count() FROM names"
    )
    assert run_query(query_store, prepare(tenants, sql)).rows == [[40]]


# --- functions ----------------------------------------------------------------


@pytest.mark.parametrize(
    "call",
    ["dictGet('d', 'a', 1)", "dictGetString('d', 'a', 1)", "dictHas('d', 1)",
     "dictGetOrNull('d', 'a', 1)"],
    ids=lambda call: call.split("(")[0],
)  # fmt: skip
def test_dictionary_functions_are_refused(tenants: Tenants, call: str) -> None:
    message = refused(tenants, f"SELECT {call} FROM `team-a/audit`")
    assert "is refused" in message
    assert "dictionary" in message


def test_join_get_is_refused(tenants: Tenants) -> None:
    assert "Join table" in refused(tenants, "SELECT joinGet('db.j', 'v', 1)")


def test_file_function_is_refused(tenants: Tenants) -> None:
    assert "function file() is refused" in refused(tenants, "SELECT file('/etc/passwd')")


@pytest.mark.parametrize(
    "call",
    ["version()", "hostName()", "getSetting('max_memory_usage')", "currentUser()",
     "getMacro('replica')", "uptime()", "serverUUID()", "getServerSetting('path')",
     "filesystemAvailable()"],
    ids=lambda call: call.split("(")[0],
)  # fmt: skip
def test_server_revealing_functions_are_refused(tenants: Tenants, call: str) -> None:
    assert "reveals the server" in refused(tenants, f"SELECT {call}")


def test_sleep_is_refused(tenants: Tenants) -> None:
    assert "sleepEachRow() is refused" in refused(
        tenants, "SELECT sleepEachRow(3) FROM `team-a/audit`"
    )


def test_table_metadata_functions_are_refused(tenants: Tenants) -> None:
    sql = f"SELECT hasColumnInTable('{DATABASE}', '{tenants.other}', 'eventName')"
    assert "reads data outside" in refused(tenants, sql)


def test_refused_functions_are_refused_in_trino_too(tenants: Tenants) -> None:
    assert "dictionary" in refused(tenants, "SELECT dictGet('d', 'a', 1)", "trino")


def test_current_database_is_allowed(query_store: Store, tenants: Tenants) -> None:
    result = run_query(query_store, prepare(tenants, "SELECT currentDatabase()"))
    assert len(result.rows) == 1


# --- what gets to the engine ----------------------------------------------------


def test_comments_are_not_passed_to_the_engine(tenants: Tenants) -> None:
    prepared = prepare(
        tenants,
        "SELECT count() /* ; DROP TABLE x */ FROM `team-a/audit` -- SETTINGS readonly = 0\n",
    )
    assert "DROP" not in prepared.sql
    assert "--" not in prepared.sql
    assert "/*" not in prepared.sql


def test_comment_cannot_hide_a_second_statement(tenants: Tenants) -> None:
    assert "DROP" in refused(tenants, "SELECT 1 -- harmless\n; DROP TABLE `team-a/audit`")


def test_string_literals_cannot_smuggle_sql(query_store: Store, tenants: Tenants) -> None:
    # In Trino a backslash is an ordinary character; in ClickHouse it escapes.
    sql = "SELECT 'x\\', (SELECT count(*) FROM \"team-a/audit\"), ' FROM system.tables' AS z"
    prepared = prepare(tenants, sql, "trino")
    result = run_query(query_store, prepared)
    assert result.rows == [["x\\", 40, " FROM system.tables"]]


def test_rewritten_query_reads_only_the_resolved_tables(tenants: Tenants) -> None:
    prepared = prepare(tenants, "SELECT count() FROM `team-a/audit`")
    assert f'"{DATABASE}"."{tenants.mine}"' in prepared.sql
    assert [t.table for t in prepared.tables] == [tenants.mine]
    assert [t.ref for t in prepared.tables] == ["team-a/audit"]


@pytest.mark.parametrize(
    ("sql", "dialect"),
    [
        ("SELECT count() FROM `team-a/audit`", "clickhouse"),
        ('SELECT count(*) FROM "team-a/audit"', "trino"),
        ("SELECT count() FROM {mine}", "clickhouse"),
        ("SELECT count() FROM trail.{mine}", "clickhouse"),
        (f"SELECT count() FROM `{MY_UID}`", "clickhouse"),
        (f'SELECT count(*) FROM "{MY_UID}"', "trino"),
        (f"SELECT count(*) FROM {MY_UID}", "trino"),
        (f"SELECT count() FROM {MY_UID} WHERE 1 = 1", "clickhouse"),
        ('SELECT count(*) FROM "team-a"."audit"', "trino"),
    ],
    ids=["backticks", "double-quotes", "table", "database.table", "uid-backticks",
         "uid-quoted", "uid-bare-trino", "uid-bare-clickhouse", "namespace.name"],
)  # fmt: skip
def test_a_store_can_be_named_by_ref_table_or_uid(
    query_store: Store, tenants: Tenants, sql: str, dialect: str
) -> None:
    prepared = prepare(tenants, sql.format(mine=tenants.mine), dialect)
    assert run_query(query_store, prepared).rows == [[40]]


def test_columns_qualified_by_the_store_ref_resolve(query_store: Store, tenants: Tenants) -> None:
    sql = "SELECT count(`team-a/audit`.eventName) FROM `team-a/audit`"
    assert run_query(query_store, prepare(tenants, sql)).rows == [[40]]


# --- errors -------------------------------------------------------------------


def test_syntax_error_reports_line_and_column(tenants: Tenants) -> None:
    with pytest.raises(QuerySyntaxError) as raised:
        prepare(tenants, "SELECT eventName\nFROM `team-a/audit`\nWHERE (eventName = 'x'")
    assert raised.value.line == 3
    assert raised.value.column is not None
    assert "line 3, column" in str(raised.value)
    assert "Traceback" not in str(raised.value)


def test_unterminated_string_reports_line_and_column(tenants: Tenants) -> None:
    with pytest.raises(QuerySyntaxError) as raised:
        prepare(tenants, "SELECT 1\nFROM `team-a/audit` WHERE eventName = 'x")
    assert raised.value.line == 2
    assert raised.value.column == 39  # the opening quote


def test_empty_query_is_a_syntax_error(tenants: Tenants) -> None:
    with pytest.raises(QuerySyntaxError, match="empty"):
        prepare(tenants, "   ")


def test_engine_errors_name_the_store_not_its_table(query_store: Store, tenants: Tenants) -> None:
    prepared = prepare(tenants, "SELECT noSuchColumn FROM `team-a/audit`")
    with pytest.raises(QueryExecutionError) as raised:
        run_query(query_store, prepared)
    message = str(raised.value)
    assert "noSuchColumn" in message
    assert tenants.mine not in message
    assert "Stack trace" not in message


def test_unknown_dialect_is_refused(tenants: Tenants) -> None:
    with pytest.raises(ValueError, match="dialect"):
        prepare(tenants, "SELECT 1", "postgres")
