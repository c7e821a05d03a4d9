"""CloudTrail Lake (Trino) SQL rewritten into ClickHouse SQL that means the same thing.

sqlglot parses Trino and generates ClickHouse, and for most of the language
that is enough. This module fixes what it gets wrong or leaves out, each
checked by running the output on the engine (tests/query):

- Functions sqlglot emits under names ClickHouse lacks (`APPROX_QUANTILE`,
  `TIME_TO_UNIX`, `SPLIT_PART`, `LOGICAL_OR`, `STR_TO_TIME`, `format_datetime`,
  `any_match`, ...) become their ClickHouse equivalents.
- `date_format`/`date_parse`: sqlglot maps Trino's `%i` (minutes) to `%M`,
  which is the month name in ClickHouse; formats are mapped here instead.
- `from_iso8601_timestamp` keeps its milliseconds (sqlglot casts to DateTime).
- `json_extract_scalar` returns numbers and booleans as text, like Trino
  (ClickHouse's JSONExtractString returns '' for them), and NULL for objects.
- The Lake schema has `requestParameters`, `responseElements` and
  `additionalEventData` as maps; here they are JSON text. `element_at(col, k)`
  and `col[k]` on them read key `k` from the JSON, as a map value would.
- `CROSS JOIN UNNEST(...) AS t(a, b)` becomes ARRAY JOIN; arrays of rows
  (`resources`) expand into one column per field, by position, as in Trino.
- Trino identifiers are case-insensitive (`eventname` is `eventName`);
  ClickHouse's are not, so names of event columns, their nested fields and the
  query's own aliases are brought to their declared spelling.
- The Lake's string fields are NULL when absent; here they are ''. So
  `errorCode IS NOT NULL` (the Lake idiom for failed calls) becomes
  `notEmpty(errorCode)`.

Anything this cannot translate faithfully raises TranslationError rather than
producing SQL that quietly means something else.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Final

from sqlglot import exp

from trail_operator.store.ddl import EVENT_COLUMNS


class TranslationError(ValueError):
    """A Trino construct with no faithful ClickHouse translation here."""


@dataclass
class _Field:
    """A column of the event table, or a field nested in one."""

    name: str
    is_string: bool = False
    # Fields of a Tuple, or of the Tuples in an Array(Tuple).
    children: dict[str, _Field] = field(default_factory=dict)
    # Reached through an array: `resources.name` is an Array(String).
    in_array: bool = False


def _field_from_type(name: str, kind: exp.DataType, in_array: bool = False) -> _Field:
    while kind.this == exp.DataType.Type.LOWCARDINALITY and kind.expressions:
        kind = kind.expressions[0]
    if kind.this == exp.DataType.Type.ARRAY and kind.expressions:
        inner = kind.expressions[0]
        if inner.this == exp.DataType.Type.STRUCT:
            return _Field(name, children=_struct_children(inner, in_array=True), in_array=in_array)
        return _Field(name, in_array=in_array)
    if kind.this == exp.DataType.Type.STRUCT:
        return _Field(name, children=_struct_children(kind, in_array), in_array=in_array)
    return _Field(name, is_string=kind.this == exp.DataType.Type.TEXT, in_array=in_array)


def _struct_children(kind: exp.DataType, in_array: bool) -> dict[str, _Field]:
    children: dict[str, _Field] = {}
    for column in kind.expressions:
        if isinstance(column, exp.ColumnDef) and isinstance(column.args.get("kind"), exp.DataType):
            child = _field_from_type(column.name, column.args["kind"], in_array)
            children[column.name.lower()] = child
    return children


def _event_schema() -> dict[str, _Field]:
    schema: dict[str, _Field] = {}
    for name, declaration in EVENT_COLUMNS:
        type_text = re.split(r"\s+(?:CODEC|DEFAULT)\b", declaration, maxsplit=1)[0]
        kind = exp.DataType.build(type_text, dialect="clickhouse")
        schema[name.lower()] = _field_from_type(name, kind)
    return schema


# The event table's columns and nested fields, read from the DDL so the two
# never disagree. Keyed by lower-case name (Trino identifiers are case-insensitive).
EVENT_SCHEMA: Final = _event_schema()

# Columns that the Lake exposes as map(varchar, varchar) and this store keeps as JSON text.
JSON_MAP_COLUMNS: Final = frozenset(
    {"requestParameters", "responseElements", "additionalEventData"}
)

_SCALAR_JSON_TYPES: Final = ("Int64", "UInt64", "Double", "Bool")


def to_clickhouse(tree: exp.Expr) -> exp.Expr:
    """Rewrite a parsed Trino query (in place) so that sqlglot's ClickHouse output is right."""
    _canonicalize_identifiers(tree)
    tree = _order_whole_set_operations(tree)
    _name_result_columns(tree)
    for select in list(tree.find_all(exp.Select)):
        _unnest_to_array_join(select)
    # Children before parents, so a rewrite sees (and copies) rewritten arguments.
    # sqlglot's own transform() does not descend into a node it has replaced.
    for node in reversed(list(tree.dfs())):
        rewritten = _rewrite_node(node)
        if rewritten is not node:
            if node is tree:
                tree = rewritten
            else:
                node.replace(rewritten)
    return tree


# --- identifiers ------------------------------------------------------------


def _column_path(column: exp.Column) -> tuple[list[exp.Identifier], int] | None:
    """The identifiers of a column reference and where the event column starts in them."""
    parts = [part for part in column.parts if isinstance(part, exp.Identifier)]
    if not parts:
        return None
    if parts[0].name.lower() in EVENT_SCHEMA:
        return parts, 0
    if len(parts) > 1 and parts[1].name.lower() in EVENT_SCHEMA:
        return parts, 1  # qualified by a table name or alias
    return None


def _resolve_field(column: exp.Column) -> _Field | None:
    path = _column_path(column)
    if path is None:
        return None
    parts, start = path
    current: _Field | None = EVENT_SCHEMA[parts[start].name.lower()]
    for part in parts[start + 1 :]:
        if current is None:
            return None
        current = current.children.get(part.name.lower())
    return current


def _canonicalize_identifiers(tree: exp.Expr) -> None:
    declared: dict[str, str] = {}
    for node in tree.find_all(exp.Alias, exp.TableAlias, exp.CTE):
        alias = node.this if isinstance(node, exp.TableAlias) else node.args.get("alias")
        if isinstance(alias, exp.TableAlias):
            alias = alias.this
        if isinstance(alias, exp.Identifier):
            declared.setdefault(alias.name.lower(), alias.name)
        if isinstance(node, exp.TableAlias):
            for column in node.columns:
                declared.setdefault(column.name.lower(), column.name)

    for column in tree.find_all(exp.Column):
        path = _column_path(column)
        if path is None:
            for part in column.parts:
                if isinstance(part, exp.Identifier) and part.name.lower() in declared:
                    part.set("this", declared[part.name.lower()])
            continue
        parts, start = path
        if start == 1 and parts[0].name.lower() in declared:
            parts[0].set("this", declared[parts[0].name.lower()])
        current: _Field | None = None
        for index, part in enumerate(parts[start:]):
            lookup = EVENT_SCHEMA if index == 0 else (current.children if current else {})
            found = lookup.get(part.name.lower())
            if found is None:
                break
            part.set("this", found.name)
            current = found

    for table in tree.find_all(exp.Table):
        identifier = table.this
        if (
            isinstance(identifier, exp.Identifier)
            and not table.args.get("db")
            and identifier.name.lower() in declared
        ):
            identifier.set("this", declared[identifier.name.lower()])


def _order_whole_set_operations(tree: exp.Expr) -> exp.Expr:
    """`a UNION b ORDER BY x LIMIT n` orders the union in Trino, only `b` in ClickHouse."""
    for node in reversed(list(tree.find_all(exp.SetOperation))):
        modifiers = {key: node.args.get(key) for key in ("order", "limit", "offset")}
        if not any(modifiers.values()):
            continue
        inner = node.copy()
        for key in modifiers:
            inner.set(key, None)
        outer = exp.Select(expressions=[exp.Star()]).from_(exp.Subquery(this=inner), copy=False)
        for key, value in modifiers.items():
            if value is not None:
                outer.set(key, value)
        if node is tree:
            tree = outer
        else:
            node.replace(outer)
    return tree


def _name_result_columns(tree: exp.Expr) -> None:
    """Name unnamed result columns as Trino does (`_col0`, ...), not by their ClickHouse text."""
    select = tree
    while isinstance(select, exp.SetOperation):
        select = select.this
    if not isinstance(select, exp.Select):
        return
    for index, expression in enumerate(select.expressions):
        # Columns keep their ClickHouse names: an alias named like a column
        # would shadow that column elsewhere in a ClickHouse query.
        if isinstance(expression, exp.Alias | exp.Star | exp.Column):
            continue
        expression.replace(exp.alias_(expression.copy(), f"_col{index}", quoted=True))


# --- UNNEST -----------------------------------------------------------------


def _unnest_to_array_join(select: exp.Select) -> None:
    from_ = select.args.get("from_")
    if from_ is not None and isinstance(from_.this, exp.Unnest):
        raise TranslationError(
            "UNNEST is supported only joined to a table (FROM t CROSS JOIN UNNEST(...) AS u(x));"
            " for a literal array use ClickHouse's arrayJoin([...])"
        )
    for join in select.args.get("joins") or []:
        unnest = join.this
        if not isinstance(unnest, exp.Unnest):
            continue
        side = (join.side or "").upper()
        kind = (join.kind or "").upper()
        on = join.args.get("on")
        is_cross = kind in ("", "CROSS") and side == "" and on is None
        is_left = side == "LEFT" and isinstance(on, exp.Boolean) and on.this is True
        if not (is_cross or is_left):
            raise TranslationError(
                "UNNEST can be joined as CROSS JOIN UNNEST(...), `, UNNEST(...)` or"
                " LEFT JOIN UNNEST(...) ON TRUE; put other conditions in WHERE"
            )
        join.replace(_array_join_for(select, unnest, left=is_left))


def _array_join_for(select: exp.Select, unnest: exp.Unnest, left: bool) -> exp.Join:
    arrays = list(unnest.expressions)
    alias = unnest.args.get("alias")
    alias_name = alias.name if isinstance(alias, exp.TableAlias) else ""
    names = [column.name for column in alias.columns] if isinstance(alias, exp.TableAlias) else []
    ordinality = unnest.args.get("offset")
    ordinality_name = ordinality.name if isinstance(ordinality, exp.Identifier) else None

    targets: list[exp.Expr] = []
    # Reference in the query (qualified by the UNNEST alias or not) -> replacement.
    mapping: dict[str, exp.Expr] = {}
    if len(arrays) == 1 and len(names) > 1:
        # An array of rows expands into one column per field, by position.
        element = f"__unnest_{alias_name or 'row'}"
        targets.append(exp.alias_(arrays[0], element, quoted=True))
        for position, name in enumerate(names, start=1):
            mapping[name] = exp.Anonymous(
                this="tupleElement",
                expressions=[exp.column(element, quoted=True), exp.Literal.number(position)],
            )
    else:
        for index, array in enumerate(arrays):
            if index < len(names):
                name = names[index]
            elif len(arrays) == 1 and alias_name:
                # `UNNEST(resources) AS r`: r is the element; r.name reads its field.
                name = alias_name
            else:
                name = f"__unnest_{alias_name or 'col'}_{index + 1}"
            targets.append(exp.alias_(array, name, quoted=True))
            mapping[name] = exp.column(name, quoted=True)
    if ordinality_name:
        targets.append(
            exp.alias_(
                exp.Anonymous(this="arrayEnumerate", expressions=[arrays[0].copy()]),
                ordinality_name,
                quoted=True,
            )
        )
        mapping[ordinality_name] = exp.column(ordinality_name, quoted=True)

    for column in list(select.find_all(exp.Column)):
        qualifier = column.table
        if column.name in mapping and qualifier in ("", alias_name):
            if qualifier == "" and column.name == alias_name:
                continue
            replacement = mapping[column.name].copy()
            if isinstance(column.parent, exp.Select) and column.arg_key == "expressions":
                replacement = exp.alias_(replacement, column.name, quoted=True)
            column.replace(replacement)

    return exp.Join(
        this=targets[0],
        expressions=targets[1:],
        kind="ARRAY",
        side="LEFT" if left else None,
    )


# --- functions and operators ------------------------------------------------


def _call(name: str, *args: exp.Expr) -> exp.Anonymous:
    return exp.Anonymous(this=name, expressions=list(args))


def _json_path_arguments(path: exp.Expr) -> list[exp.Expr] | None:
    """A literal JSONPath as ClickHouse JSON function arguments; None if not literal."""
    if not isinstance(path, exp.JSONPath):
        return None
    arguments: list[exp.Expr] = []
    for part in path.expressions:
        if isinstance(part, exp.JSONPathRoot):
            continue
        if isinstance(part, exp.JSONPathKey) and isinstance(part.this, str):
            arguments.append(exp.Literal.string(part.this))
        elif isinstance(part, exp.JSONPathSubscript) and isinstance(part.this, int):
            # JSONPath counts from 0, ClickHouse's JSON functions from 1.
            arguments.append(exp.Literal.number(part.this + 1))
        else:
            raise TranslationError(
                f"JSON path {path.sql()!r} uses {type(part).__name__.removeprefix('JSONPath')},"
                " which is not supported: use keys and numeric subscripts ($.a.b[0])"
            )
    return arguments


def _json_text_value(
    document: exp.Expr, path: list[exp.Expr], raw_types: tuple[str, ...] | None
) -> exp.Expr:
    """The value at `path` as text: strings unquoted, `raw_types` as JSON, others NULL.

    raw_types None: every non-string, non-null value as its JSON text (a
    Lake map value); otherwise only those JSON types (json_extract_scalar).
    """

    def args() -> list[exp.Expr]:
        return [document.copy(), *(p.copy() for p in path)]

    json_type = _call("JSONType", *args())
    raw_condition: exp.Expr
    if raw_types is None:
        raw_condition = exp.NEQ(this=json_type.copy(), expression=exp.Literal.string("Null"))
    else:
        raw_condition = exp.In(
            this=json_type.copy(), expressions=[exp.Literal.string(t) for t in raw_types]
        )
    return _call(
        "multiIf",
        exp.EQ(this=json_type, expression=exp.Literal.string("String")),
        _call("JSONExtractString", *args()),
        raw_condition,
        _call("JSONExtractRaw", *args()),
        exp.Null(),
    )


# sqlglot keeps Trino's date formats in Python strftime codes; these are
# ClickHouse formatDateTime/parseDateTime (MySQL-style) codes for them.
_STRFTIME_TO_CLICKHOUSE: Final = {
    "%Y": "%Y", "%y": "%y", "%m": "%m", "%-m": "%c", "%d": "%d", "%-d": "%e",
    "%H": "%H", "%-H": "%k", "%I": "%I", "%-I": "%l", "%M": "%i", "%S": "%S",
    "%f": "%f", "%p": "%p", "%j": "%j", "%a": "%a", "%A": "%W", "%b": "%b",
    "%B": "%M", "%W": "%V", "%G": "%G", "%%": "%%",
}  # fmt: skip
_STRFTIME_CODE: Final = re.compile(r"%-?[A-Za-z%]")


def _clickhouse_time_format(node: exp.Expr) -> exp.Expr:
    fmt = node.args.get("format")
    if not (isinstance(fmt, exp.Literal) and fmt.is_string):
        raise TranslationError("date formats must be string literals")

    def convert(match: re.Match[str]) -> str:
        code = match.group(0)
        if code not in _STRFTIME_TO_CLICKHOUSE:
            raise TranslationError(f"date format code in {fmt.this!r} has no ClickHouse equivalent")
        return _STRFTIME_TO_CLICKHOUSE[code]

    return exp.Literal.string(_STRFTIME_CODE.sub(convert, fmt.this))


def _rename(name: str) -> Callable[[exp.Expr], exp.Expr]:
    return lambda node: _call(name, *node.expressions)


def _lambda_first(name: str, negate: bool = False) -> Callable[[exp.Expr], exp.Expr]:
    """Trino's (array, lambda) argument order is ClickHouse's (lambda, array)."""

    def build(node: exp.Expr) -> exp.Expr:
        if len(node.expressions) != 2:
            raise TranslationError(f"{node.name} takes an array and a lambda")
        array, function = node.expressions
        call = _call(name, function, array)
        return exp.Not(this=call) if negate else call

    return build


def _map_agg(node: exp.Expr) -> exp.Expr:
    if len(node.expressions) != 2:
        raise TranslationError("map_agg takes a key and a value")
    key, value = node.expressions
    return _call("mapFromArrays", _call("groupArray", key), _call("groupArray", value))


_ANONYMOUS_REWRITES: Final[dict[str, Callable[[exp.Expr], exp.Expr]]] = {
    "format_datetime": _rename("formatDateTimeInJodaSyntax"),
    "map_values": _rename("mapValues"),
    "at_timezone": _rename("toTimeZone"),
    "with_timezone": _rename("toTimeZone"),
    "url_extract_host": _rename("domain"),
    "url_extract_path": _rename("path"),
    "url_extract_query": _rename("queryString"),
    "url_extract_parameter": _rename("extractURLParameter"),
    "url_extract_protocol": _rename("protocol"),
    "url_extract_port": _rename("port"),
    "any_match": _lambda_first("arrayExists"),
    "all_match": _lambda_first("arrayAll"),
    "none_match": _lambda_first("arrayExists", negate=True),
    "map_agg": _map_agg,
}


def _utc(node: exp.Expr) -> exp.Expr:
    return exp.Literal.string("UTC")


def _rewrite_node(node: exp.Expr) -> exp.Expr:
    if isinstance(node, exp.Anonymous):
        rewrite = _ANONYMOUS_REWRITES.get(node.name.lower())
        return rewrite(node) if rewrite else node
    if isinstance(node, exp.JSONExtractScalar):
        path = _json_path_arguments(node.expression)
        if path is None:
            return node
        return _json_text_value(node.this, path, raw_types=_SCALAR_JSON_TYPES)
    if isinstance(node, exp.Bracket):
        return _json_map_lookup(node)
    if isinstance(node, exp.Is):
        return _string_null_check(node)
    if isinstance(node, exp.FromISO8601Timestamp):
        return _call("parseDateTime64BestEffort", node.this, exp.Literal.number(3), _utc(node))
    if isinstance(node, exp.TimeToStr):
        return _call("formatDateTime", node.this, _clickhouse_time_format(node))
    if isinstance(node, exp.StrToTime):
        return _call("parseDateTime", node.this, _clickhouse_time_format(node), _utc(node))
    if isinstance(node, exp.ParseDatetime):
        fmt = node.args.get("format")
        args = [node.this, fmt] if fmt is not None else [node.this]
        return _call("parseDateTimeInJodaSyntax", *args, _utc(node))
    if isinstance(node, exp.ApproxQuantile):
        quantile = node.args.get("quantile")
        if isinstance(quantile, exp.Literal) and not quantile.is_string:
            return exp.Quantile(this=node.this, quantile=quantile)
        raise TranslationError("approx_percentile needs a constant percentile, e.g. 0.95")
    if isinstance(node, exp.TimeToUnix):
        millis = _call(
            "toUnixTimestamp64Milli", _call("toDateTime64", node.this, exp.Literal.number(3))
        )
        return exp.Div(this=millis, expression=exp.Literal.number(1000))
    if isinstance(node, exp.SplitPart):
        parts = _call("splitByString", node.args["delimiter"], node.this)
        return _call("arrayElement", parts, node.args["part_index"])
    if isinstance(node, exp.ParseJSON | exp.JSONFormat | exp.Encode | exp.Decode):
        # JSON is text in this store, and strings are bytes already.
        inner: exp.Expr = node.this
        return inner
    if isinstance(node, exp.LogicalOr):
        return exp.Max(this=node.this)
    if isinstance(node, exp.LogicalAnd):
        return exp.Min(this=node.this)
    if isinstance(node, exp.MapKeys):
        return _call("mapKeys", node.this)
    if isinstance(node, exp.Uuid):
        return _call("generateUUIDv4")
    if isinstance(node, exp.ArrayPosition):
        return _call("indexOf", node.this, node.expression)
    if isinstance(node, exp.GenerateSeries):
        end = exp.Add(this=node.args["end"], expression=exp.Literal.number(1))
        step = node.args.get("step")
        return _call("range", node.args["start"], end, *([step] if step is not None else []))
    return node


def _json_map_lookup(node: exp.Bracket) -> exp.Expr:
    target = node.this
    if not (isinstance(target, exp.Column) and len(node.expressions) == 1):
        return node
    found = _resolve_field(target)
    if found is None or found.name not in JSON_MAP_COLUMNS:
        return node
    key = node.expressions[0]
    return _json_text_value(target, [key], raw_types=None)


def _string_null_check(node: exp.Is) -> exp.Expr:
    target = node.this
    if not (isinstance(node.expression, exp.Null) and isinstance(target, exp.Column)):
        return node
    found = _resolve_field(target)
    if found is None or not found.is_string or found.in_array:
        return node
    return _call("empty", target)
