"""Building blocks shared by the three custom resources.

The pydantic models in `crds/` are the one place a field of a custom resource
is defined: the CRD schemas in `crds/*.yaml` are generated from them (see
`schema.py`), and the operator parses the objects it receives with them. So a
rule that the apiserver enforces with CEL is declared once, as a `CelRule`
that carries both the CEL text and the same check in Python; a model refuses
what `kubectl apply` would refuse.

Field names are snake_case in Python and camelCase on the wire (the alias);
models accept either and dump camelCase.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Annotated, Any, ClassVar, Final, Literal, Self, get_args

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator
from pydantic.alias_generators import to_camel

from trail_operator.config import API_GROUP, API_VERSION

CelReason = Literal[
    "FieldValueInvalid", "FieldValueRequired", "FieldValueForbidden", "FieldValueDuplicate"
]


@dataclass(frozen=True)
class CelRule:
    """One `x-kubernetes-validations` rule and the same check in Python.

    `rule` is evaluated by the apiserver with `self` bound to the object the
    rule is attached to; `holds` gets the validated model instance and must
    agree with `rule`. `field_path` (relative, e.g. `.kmsKeyId`) makes the
    apiserver name the offending field instead of the enclosing object.
    """

    rule: str
    message: str
    holds: Callable[[Any], bool]
    field_path: str | None = None
    reason: CelReason | None = None

    def to_schema(self) -> dict[str, str]:
        """The rule as it appears in a CRD's `x-kubernetes-validations`."""
        schema = {"rule": self.rule, "message": self.message}
        if self.field_path is not None:
            schema["fieldPath"] = self.field_path
        if self.reason is not None:
            schema["reason"] = self.reason
        return schema


def _add_cel_rules(schema: dict[str, Any], cls: type[Any]) -> None:
    rules: Sequence[CelRule] = getattr(cls, "cel_rules", ())
    if rules:
        schema["x-kubernetes-validations"] = [rule.to_schema() for rule in rules]


class CrdModel(BaseModel):
    """Base of every spec and status model: camelCase on the wire, no unknown keys.

    Unknown keys are refused (the apiserver would prune them silently; here a
    typo should be loud). Subclasses list their cross-field rules in
    `cel_rules`; they go to the CRD and are checked on validation.
    """

    model_config = ConfigDict(
        alias_generator=to_camel,
        validate_by_name=True,
        validate_by_alias=True,
        serialize_by_alias=True,
        extra="forbid",
        frozen=True,
        json_schema_extra=_add_cel_rules,
    )

    cel_rules: ClassVar[tuple[CelRule, ...]] = ()

    @model_validator(mode="after")
    def _check_cel_rules(self) -> Self:
        for rule in type(self).cel_rules:
            if not rule.holds(self):
                # pydantic prefixes the error with this object's location; the
                # message names the field, as the apiserver's does.
                raise ValueError(rule.message)
        return self


def _unique(values: list[str]) -> list[str]:
    duplicates = sorted({v for v in values if values.count(v) > 1})
    if duplicates:
        raise ValueError(f"duplicate values: {', '.join(duplicates)}")
    return values


# Kubernetes object names: DNS-1123 subdomains and labels.
_DNS_SUBDOMAIN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
_DNS_LABEL = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
ObjectName = Annotated[str, Field(min_length=1, max_length=253, pattern=_DNS_SUBDOMAIN)]
NamespaceName = Annotated[str, Field(min_length=1, max_length=63, pattern=_DNS_LABEL)]

# Lists the apiserver treats as sets (`x-kubernetes-list-type: set`): no duplicates.
_SET = Field(json_schema_extra={"x-kubernetes-list-type": "set"})
StringSet = Annotated[list[str], AfterValidator(_unique), _SET]
ObjectNameSet = Annotated[list[ObjectName], AfterValidator(_unique), _SET]
NamespaceSet = Annotated[list[NamespaceName], AfterValidator(_unique), _SET]

# Counters that outgrow 32 bits (events, bytes).
Int64 = Annotated[int, Field(ge=0, json_schema_extra={"format": "int64"})]


# --- Advanced event selectors (CloudTrail's AdvancedEventSelector) ---------------

SelectorField = Literal[
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
]
# Same names and order as `trail_operator.events.selectors`, which evaluates them.
FIELDS: Final[tuple[str, ...]] = get_args(SelectorField)
OPERATORS: Final[tuple[str, ...]] = (
    "equals",
    "notEquals",
    "startsWith",
    "notStartsWith",
    "endsWith",
    "notEndsWith",
)

_EQUALITY = ("equals", "notEquals")

# CloudTrail's own limits for selector values.
_SelectorValues = Annotated[
    list[Annotated[str, Field(min_length=1, max_length=2048)]],
    Field(min_length=1, max_length=500),
]


class FieldSelector(CrdModel):
    """One condition on one field: every operator given must hold (AND)."""

    field: SelectorField = Field(description="The event field this condition tests.")
    equals: _SelectorValues | None = Field(
        None, description="The field equals one of these values."
    )
    not_equals: _SelectorValues | None = Field(
        None, description="The field equals none of these values."
    )
    starts_with: _SelectorValues | None = Field(
        None, description="The field starts with one of these prefixes."
    )
    not_starts_with: _SelectorValues | None = Field(
        None, description="The field starts with none of these prefixes."
    )
    ends_with: _SelectorValues | None = Field(
        None, description="The field ends with one of these suffixes."
    )
    not_ends_with: _SelectorValues | None = Field(
        None, description="The field ends with none of these suffixes."
    )

    cel_rules = (
        CelRule(
            rule=" || ".join(f"has(self.{op})" for op in OPERATORS),
            message="a field selector needs at least one operator: " + ", ".join(OPERATORS),
            holds=lambda s: any(s.operators().values()),
        ),
        # readOnly is a boolean: only whole-value comparisons with true/false mean anything.
        # (Exact lowercase, as CloudTrail; lowerAscii() would cost more than the CRD budget.)
        CelRule(
            rule="self.field != 'readOnly' || !("
            + " || ".join(f"has(self.{op})" for op in OPERATORS if op not in _EQUALITY)
            + ")",
            message="readOnly takes only equals and notEquals",
            field_path=".field",
            holds=lambda s: s.field != "readOnly" or set(s.operators()) <= set(_EQUALITY),
        ),
        CelRule(
            rule="self.field != 'readOnly' || ("
            + " && ".join(
                f"(!has(self.{op}) || self.{op}.all(v, v == 'true' || v == 'false'))"
                for op in _EQUALITY
            )
            + ")",
            message="readOnly values must be true or false",
            holds=lambda s: (
                s.field != "readOnly"
                or all(
                    value in ("true", "false")
                    for values in s.operators().values()
                    for value in values
                )
            ),
        ),
    )

    def operators(self) -> dict[str, list[str]]:
        """The operators given, by their wire name (`notEquals`, ...)."""
        given = self.model_dump(exclude={"field"}, exclude_none=True)
        return {op: list(given[op]) for op in OPERATORS if op in given}


class AdvancedEventSelector(CrdModel):
    """Keeps an event when all of its field selectors match."""

    name: str | None = Field(
        None, max_length=1000, description="A name for this selector, for people reading it."
    )
    field_selectors: list[FieldSelector] = Field(
        min_length=1,
        max_length=20,
        description="Conditions on event fields; an event must match all of them.",
    )


ADVANCED_EVENT_SELECTORS_DESCRIPTION: Final = (
    "Which events to keep: an event is kept when it matches any selector. "
    "Without selectors, all management events are kept."
)
MAX_ADVANCED_EVENT_SELECTORS: Final = 50


# --- References to Secrets ------------------------------------------------------


class SecretRef(CrdModel):
    """A Secret in the same namespace as the referring object."""

    name: ObjectName = Field(description="Name of the Secret.")


class SecretKeyRef(CrdModel):
    """One key of a Secret in the same namespace as the referring object."""

    name: ObjectName = Field(description="Name of the Secret.")
    key: str | None = Field(
        None,
        min_length=1,
        max_length=253,
        description="Key inside the Secret; each field that refers to a Secret names its default.",
    )


# Keys of a Secret named by an S3 `credentialsSecretRef`.
S3_ACCESS_KEY_ID_KEY: Final = "accessKeyId"
S3_SECRET_ACCESS_KEY_KEY: Final = "secretAccessKey"
S3_SESSION_TOKEN_KEY: Final = "sessionToken"

S3_CREDENTIALS_DESCRIPTION: Final = (
    f"Secret with the keys `{S3_ACCESS_KEY_ID_KEY}`, `{S3_SECRET_ACCESS_KEY_KEY}` and optionally "
    f"`{S3_SESSION_TOKEN_KEY}`; without it, the AWS default credential chain is used."
)
S3_BUCKET_PATTERN: Final = r"^[a-z0-9][a-z0-9.-]*[a-z0-9]$"


def s3_bucket_field(description: str) -> Any:
    """An S3 bucket name (3-63 lowercase letters, digits, dots, hyphens)."""
    return Field(min_length=3, max_length=63, pattern=S3_BUCKET_PATTERN, description=description)


class S3Access(CrdModel):
    """How to reach a bucket: the server, its region, addressing and credentials."""

    endpoint: str | None = Field(
        None, pattern=r"^https?://", description="URL of an S3-compatible server; default: AWS S3."
    )
    region: str | None = Field(None, min_length=1, description="Region of the bucket.")
    force_path_style: bool | None = Field(
        None,
        description="Address the bucket in the URL path instead of the host name; most "
        "S3-compatible servers need it.",
    )
    credentials_secret_ref: SecretRef | None = Field(None, description=S3_CREDENTIALS_DESCRIPTION)


# --- Labels (a subset of metav1.LabelSelector) ----------------------------------


class LabelSelectorRequirement(CrdModel):
    """A set-based label requirement, as in Kubernetes label selectors."""

    key: str = Field(min_length=1, max_length=317, description="The label key.")
    operator: Literal["In", "NotIn", "Exists", "DoesNotExist"] = Field(
        description="How the label's value relates to `values`."
    )
    values: list[str] | None = Field(
        None, description="Values for In and NotIn; must be empty for Exists and DoesNotExist."
    )

    cel_rules = (
        CelRule(
            rule="(self.operator in ['In', 'NotIn'])"
            " == (has(self.values) && size(self.values) > 0)",
            message="values must be non-empty for In and NotIn, and absent for Exists and "
            "DoesNotExist",
            field_path=".values",
            holds=lambda s: (s.operator in ("In", "NotIn")) == bool(s.values),
        ),
    )


class LabelSelector(CrdModel):
    """Selects objects by label; the requirements are ANDed."""

    match_labels: dict[str, str] | None = Field(
        None, description="Labels that must all be present with these values."
    )
    match_expressions: list[LabelSelectorRequirement] | None = Field(
        None, description="Set-based requirements that must all hold."
    )

    cel_rules = (
        CelRule(
            rule="(has(self.matchLabels) && size(self.matchLabels) > 0) || "
            "(has(self.matchExpressions) && size(self.matchExpressions) > 0)",
            message="an empty selector would select every pod; give matchLabels or "
            "matchExpressions",
            holds=lambda s: bool(s.match_labels) or bool(s.match_expressions),
        ),
    )


# --- Status ---------------------------------------------------------------------

CONDITION_READY: Final = "Ready"


class Condition(CrdModel):
    """A Kubernetes-style condition (metav1.Condition)."""

    type: str = Field(
        min_length=1, max_length=316, description="Type of condition, e.g. Ready (CamelCase)."
    )
    status: Literal["True", "False", "Unknown"] = Field(description="Status of the condition.")
    reason: str = Field(
        min_length=1,
        max_length=1024,
        pattern=r"^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$",
        description="Machine-readable CamelCase reason for the last transition.",
    )
    message: str = Field(
        "", max_length=32768, description="Human-readable details of the last transition."
    )
    last_transition_time: datetime = Field(
        description="When the status last changed from one value to another."
    )
    observed_generation: int | None = Field(
        None, ge=0, description="The .metadata.generation this condition was computed from."
    )


def _one_per_type(conditions: list[Condition]) -> list[Condition]:
    _unique([condition.type for condition in conditions])
    return conditions


# Conditions are a map keyed by `type`, so server-side apply merges them per type.
Conditions = Annotated[
    list[Condition],
    AfterValidator(_one_per_type),
    Field(
        json_schema_extra={
            "x-kubernetes-list-type": "map",
            "x-kubernetes-list-map-keys": ["type"],
        }
    ),
]


# --- Kinds ----------------------------------------------------------------------

ColumnType = Literal["string", "integer", "number", "boolean", "date"]


@dataclass(frozen=True)
class PrinterColumn:
    """One `additionalPrinterColumns` entry (what `kubectl get` shows)."""

    name: str
    type: ColumnType
    json_path: str
    description: str = ""
    priority: int = 0

    def to_crd(self) -> dict[str, Any]:
        column: dict[str, Any] = {"name": self.name, "type": self.type, "jsonPath": self.json_path}
        if self.description:
            column["description"] = self.description
        if self.priority:
            column["priority"] = self.priority
        return column


READY_COLUMN: Final = PrinterColumn(
    "Ready",
    "string",
    '.status.conditions[?(@.type=="Ready")].status',
    "Status of the Ready condition.",
)
AGE_COLUMN: Final = PrinterColumn("Age", "date", ".metadata.creationTimestamp")


@dataclass(frozen=True)
class KindInfo:
    """Everything needed to build one kind's CRD and to address its objects."""

    kind: str
    plural: str
    singular: str
    short_names: tuple[str, ...]
    spec_model: type[CrdModel]
    status_model: type[CrdModel]
    printer_columns: tuple[PrinterColumn, ...]
    description: str
    group: str = API_GROUP
    version: str = API_VERSION
    categories: tuple[str, ...] = field(default=("trail-operator",))

    @property
    def crd_name(self) -> str:
        """`<plural>.<group>`, the CustomResourceDefinition's name."""
        return f"{self.plural}.{self.group}"

    @property
    def api_version(self) -> str:
        """`<group>/<version>`, the objects' apiVersion."""
        return f"{self.group}/{self.version}"
