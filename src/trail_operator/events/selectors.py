"""Advanced event selectors: which records an EventDataStore or a Trail keeps.

A selector list (SPEC.md, `advancedEventSelectors`) is compiled once, when the
resource is read, into one predicate over records: every ingested event runs
through the predicates of every store, so matching must be a handful of dict
lookups and string tests, with all parsing, validation and set building done
up front.

Semantics, as CloudTrail's:
- a record is kept when ANY selector matches; the conditions (field
  selectors) of one selector are ANDed;
- within one condition, the values of the positive operators (`equals`,
  `startsWith`, `endsWith`) are ORed, all of them together, and each value of
  the negative operators (`notEquals`, `notStartsWith`, `notEndsWith`)
  excludes: the condition holds when some positive value matches (or there
  is no positive operator) and no negative value matches;
- `readOnly` takes `equals`/`notEquals` with `true` or `false` (any case);
- `resources.type` / `resources.name` hold when ANY of the record's resources
  satisfies the condition; a record without resources is tested as one
  resource with empty fields, so `resources.type notEquals secrets` keeps
  non-resource requests;
- a field a record lacks (e.g. `errorCode` of a successful call) is tested as
  the empty string;
- no selectors at all: every management event (`DEFAULT_SELECTORS`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, Final

from trail_operator.events.record import CATEGORY_MANAGEMENT, Record

Predicate = Callable[[Record], bool]

FIELDS: Final = (
    "eventCategory",
    "eventSource",
    "eventName",
    "readOnly",
    "userIdentity.username",
    "resources.type",
    "resources.name",
    "namespace",
    "errorCode",
    "sourceIPAddress",
)
OPERATORS: Final = (
    "equals",
    "notEquals",
    "startsWith",
    "notStartsWith",
    "endsWith",
    "notEndsWith",
)
POSITIVE_OPERATORS: Final = ("equals", "startsWith", "endsWith")
NEGATIVE_OPERATORS: Final = ("notEquals", "notStartsWith", "notEndsWith")
# Fields that only make sense compared whole, and the operators they take.
EQUALITY_ONLY_FIELDS: Final = ("readOnly",)
SELECTOR_KEYS: Final = ("name", "fieldSelectors")

# What a store keeps when it has no selectors. Shared: copy before changing.
DEFAULT_SELECTORS: Final[tuple[dict[str, Any], ...]] = (
    {
        "name": "Management events",
        "fieldSelectors": [{"field": "eventCategory", "equals": [CATEGORY_MANAGEMENT]}],
    },
)


class SelectorError(ValueError):
    """An event selector that cannot be compiled; the message names where and why."""


def compile_selectors(
    selectors: Sequence[Mapping[str, Any]] | None,
    *,
    location: str = "advancedEventSelectors",
) -> Predicate:
    """One predicate that is true for the records any of `selectors` keeps.

    `location` prefixes error messages (e.g. `spec.advancedEventSelectors`).
    Raises SelectorError for an unknown field or operator, or a bad value.
    """
    if not selectors:
        selectors = DEFAULT_SELECTORS
    elif isinstance(selectors, str | bytes) or not isinstance(selectors, Sequence):
        raise SelectorError(f"{location}: must be a list of selectors")
    compiled = [
        _compile_selector(selector, f"{location}[{index}]")
        for index, selector in enumerate(selectors)
    ]
    if len(compiled) == 1:
        return compiled[0]
    selector_tests = tuple(compiled)

    def any_selector(record: Record) -> bool:
        for test in selector_tests:  # noqa: SIM110 (no generator object per record)
            if test(record):
                return True
        return False

    return any_selector


def selector_fields(selectors: Sequence[Mapping[str, Any]] | None) -> frozenset[str]:
    """The record fields that `compile_selectors(selectors)` reads (compile them first)."""
    return frozenset(
        condition["field"]
        for selector in (selectors or DEFAULT_SELECTORS)
        for condition in selector["fieldSelectors"]
    )


def _compile_selector(selector: object, where: str) -> Predicate:
    if not isinstance(selector, Mapping):
        raise SelectorError(f"{where}: must be an object with name and fieldSelectors")
    for key in selector:
        if key not in SELECTOR_KEYS:
            raise SelectorError(
                f"{where}: unknown key {key!r}; a selector has {', '.join(SELECTOR_KEYS)}"
            )
    name = selector.get("name")
    if name is not None and not isinstance(name, str):
        raise SelectorError(f"{where}.name: must be a string")
    conditions = selector.get("fieldSelectors")
    if (
        not conditions
        or isinstance(conditions, str | bytes)
        or not isinstance(conditions, Sequence)
    ):
        raise SelectorError(f"{where}.fieldSelectors: must be a non-empty list of conditions")
    compiled = tuple(
        _compile_condition(condition, f"{where}.fieldSelectors[{index}]")
        for index, condition in enumerate(conditions)
    )
    if len(compiled) == 1:
        return compiled[0]

    def all_conditions(record: Record) -> bool:
        for test in compiled:  # noqa: SIM110 (no generator object per record)
            if not test(record):
                return False
        return True

    return all_conditions


def _compile_condition(condition: object, where: str) -> Predicate:
    if not isinstance(condition, Mapping):
        raise SelectorError(f"{where}: must be an object with field and operators")
    field = condition.get("field")
    if field not in FIELDS:
        raise SelectorError(
            f"{where}.field: unknown field {field!r}; expected one of {', '.join(FIELDS)}"
        )
    values: dict[str, tuple[str, ...]] = {}
    for key, raw in condition.items():
        if key == "field":
            continue
        if key not in OPERATORS:
            raise SelectorError(
                f"{where}.{key}: unknown operator; expected one of {', '.join(OPERATORS)}"
            )
        if (
            isinstance(raw, str | bytes)
            or not isinstance(raw, Sequence)
            or not raw
            or not all(isinstance(value, str) for value in raw)
        ):
            raise SelectorError(f"{where}.{key}: must be a non-empty list of strings")
        values[key] = tuple(raw)
    if not values:
        raise SelectorError(
            f"{where}: field {field!r} has no operator; add one of {', '.join(OPERATORS)}"
        )
    if field in EQUALITY_ONLY_FIELDS:
        for key, items in values.items():
            if key not in ("equals", "notEquals"):
                raise SelectorError(f"{where}.{key}: {field} takes only equals and notEquals")
            bad = [value for value in items if value.lower() not in ("true", "false")]
            if bad:
                raise SelectorError(
                    f"{where}.{key}: {field} values must be true or false, got {bad}"
                )
            values[key] = tuple(value.lower() for value in items)
    test = _value_test(values)

    if field == "readOnly":
        return lambda record: test("true" if record.get("readOnly") else "false")
    if field == "userIdentity.username":

        def username_test(record: Record) -> bool:
            identity = record.get("userIdentity")
            return test(_text(identity.get("username")) if identity else "")

        return username_test
    if field.startswith("resources."):
        return _resources_test(field.partition(".")[2], test)

    equals = values.get("equals")
    if len(values) == 1 and equals and "" not in equals:
        # The common case, one dict lookup and one set lookup: a missing or
        # null field cannot equal a non-empty string.
        wanted = frozenset(equals)
        return lambda record: record.get(field) in wanted
    return lambda record: test(_text(record.get(field)))


def _resources_test(key: str, test: Callable[[str], bool]) -> Predicate:
    def resources_test(record: Record) -> bool:
        resources = record.get("resources")
        if not resources:
            return test("")
        for resource in resources:  # noqa: SIM110 (no generator object per record)
            if test(_text(resource.get(key))):
                return True
        return False

    return resources_test


def _value_test(values: dict[str, tuple[str, ...]]) -> Callable[[str], bool]:
    equals = frozenset(values.get("equals", ()))
    starts = values.get("startsWith", ())
    ends = values.get("endsWith", ())
    not_equals = frozenset(values.get("notEquals", ()))
    not_starts = values.get("notStartsWith", ())
    not_ends = values.get("notEndsWith", ())
    has_positive = bool(equals or starts or ends)

    if set(values) == {"equals"}:
        return equals.__contains__
    if set(values) == {"notEquals"}:
        return lambda value: value not in not_equals

    # str.startswith/endswith take a tuple and are false for an empty one.
    def general(value: str) -> bool:
        if has_positive and not (
            value in equals or value.startswith(starts) or value.endswith(ends)
        ):
            return False
        return not (
            value in not_equals or value.startswith(not_starts) or value.endswith(not_ends)
        )

    return general


def _text(value: object) -> str:
    if type(value) is str:
        return value
    if value is None:
        return ""
    if type(value) is bool:
        return "true" if value else "false"
    return str(value)
