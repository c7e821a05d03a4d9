"""From pydantic models to Kubernetes structural OpenAPI v3 schemas and CRDs.

pydantic emits JSON Schema 2020-12; the apiserver wants a *structural* schema
(OpenAPI v3.0 subset): no `$ref`, a `type` on every node, no `anyOf` around
types, no `additionalProperties: false`, `exclusiveMinimum` as a flag. Rather
than special-casing per model, every node goes through one conversion, and a
construct with no faithful structural form raises `StructuralSchemaError`
instead of being dropped, so a model can never silently validate more than
its CRD (or less).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from pydantic import BaseModel

from trail_operator.crds.common import KindInfo

Schema = dict[str, Any]


class StructuralSchemaError(ValueError):
    """A model uses a construct that a Kubernetes structural schema cannot express."""


# Output key order, for readable and stable YAML; keys not listed here are refused.
_KEY_ORDER: Final = (
    "description",
    "type",
    "format",
    "enum",
    "default",
    "nullable",
    "minimum",
    "exclusiveMinimum",
    "maximum",
    "exclusiveMaximum",
    "minLength",
    "maxLength",
    "pattern",
    "minItems",
    "maxItems",
    "minProperties",
    "maxProperties",
    "items",
    "properties",
    "required",
    "additionalProperties",
    "x-kubernetes-list-type",
    "x-kubernetes-list-map-keys",
    "x-kubernetes-map-type",
    "x-kubernetes-preserve-unknown-fields",
    "x-kubernetes-validations",
)
_RULE_KEY_ORDER: Final = (
    "rule",
    "message",
    "messageExpression",
    "fieldPath",
    "reason",
    "optionalOldSelf",
)
# JSON Schema noise with no meaning to the apiserver.
_DROPPED: Final = frozenset({"title", "examples", "$schema"})


def structural_schema(model: type[BaseModel]) -> Schema:
    """The structural OpenAPI v3 schema of `model`, with every `$ref` inlined."""
    raw = model.model_json_schema(by_alias=True, mode="validation")
    definitions = raw.pop("$defs", {})
    return _convert(raw, definitions, model.__name__, ())


def _convert(
    node: Mapping[str, Any], defs: Mapping[str, Any], path: str, seen: tuple[str, ...]
) -> Schema:
    node = dict(node)
    while "$ref" in node or "anyOf" in node:
        if "anyOf" in node:
            node = _collapse_optional(node, path)
            continue
        name = str(node.pop("$ref")).rsplit("/", 1)[-1]
        if name in seen:
            raise StructuralSchemaError(f"{path}: recursive model {name} cannot be inlined")
        # Keys beside the $ref (a field's description, default) win over the target's.
        node = {**defs[name], **node}
        seen = (*seen, name)
    for key in ("oneOf", "allOf", "not"):
        if key in node:
            raise StructuralSchemaError(f"{path}: `{key}` has no structural equivalent here")

    out: Schema = {}
    for key, value in node.items():
        if key in _DROPPED or (key == "default" and value is None):
            continue
        if key == "const":
            out["enum"] = [value]
        elif key == "properties":
            out[key] = {
                name: _convert(prop, defs, f"{path}.{name}", seen) for name, prop in value.items()
            }
        elif key == "items":
            out[key] = _convert(value, defs, f"{path}[]", seen)
        elif key == "additionalProperties":
            # `false` is what pruning does anyway, and the apiserver refuses it.
            if isinstance(value, Mapping):
                out[key] = _convert(value, defs, f"{path}{{}}", seen)
            elif value is not False:
                raise StructuralSchemaError(f"{path}: additionalProperties: {value!r}")
        elif key in ("exclusiveMinimum", "exclusiveMaximum") and not isinstance(value, bool):
            # JSON Schema 2020-12 has a bound; OpenAPI v3.0 has a flag on the plain bound.
            out["minimum" if key == "exclusiveMinimum" else "maximum"] = value
            out[key] = True
        elif key == "uniqueItems":
            raise StructuralSchemaError(
                f"{path}: uniqueItems is refused by the apiserver; use a list with "
                "x-kubernetes-list-type: set (common.StringSet) instead of a set"
            )
        elif key == "x-kubernetes-validations":
            out[key] = [_ordered_rule(rule, path) for rule in value]
        elif key in _KEY_ORDER:
            out[key] = value
        else:
            raise StructuralSchemaError(f"{path}: unsupported schema keyword {key!r}")

    if "type" not in out and not out.get("x-kubernetes-preserve-unknown-fields"):
        raise StructuralSchemaError(f"{path}: every node of a structural schema needs a type")
    _check_field_paths(out, path)
    return {key: out[key] for key in _KEY_ORDER if key in out}


def _ordered_rule(rule: Mapping[str, Any], path: str) -> Schema:
    unknown = set(rule) - set(_RULE_KEY_ORDER)
    if unknown:
        raise StructuralSchemaError(f"{path}: unknown CEL rule keys {sorted(unknown)}")
    return {key: rule[key] for key in _RULE_KEY_ORDER if key in rule}


def _collapse_optional(node: Schema, path: str) -> Schema:
    """`X | None` becomes `X`: optional fields are simply not required."""
    branches = node.pop("anyOf")
    kept = [branch for branch in branches if branch != {"type": "null"}]
    if len(kept) != 1:
        raise StructuralSchemaError(
            f"{path}: unions cannot be expressed structurally; only `X | None` is supported"
        )
    return {**kept[0], **node}


def _check_field_paths(node: Schema, path: str) -> None:
    for rule in node.get("x-kubernetes-validations", ()):
        field_path = rule.get("fieldPath")
        if field_path is None:
            continue
        name = field_path.removeprefix(".")
        if name not in node.get("properties", {}):
            raise StructuralSchemaError(
                f"{path}: CEL rule {rule['rule']!r} has fieldPath {field_path!r}, "
                "which is not a property of the object it is attached to"
            )


def object_schema(kind: KindInfo) -> Schema:
    """The `openAPIV3Schema` of one kind: apiVersion, kind, metadata, spec, status."""
    spec = structural_schema(kind.spec_model)
    status = structural_schema(kind.status_model)
    root: Schema = {
        "description": kind.description,
        "type": "object",
        "properties": {
            "apiVersion": {
                "description": "Versioned schema of this representation of an object.",
                "type": "string",
            },
            "kind": {"description": "The REST resource this object represents.", "type": "string"},
            "metadata": {"type": "object"},
            "spec": spec,
            "status": status,
        },
    }
    if spec.get("required"):
        root["required"] = ["spec"]
    else:
        # With `spec: {}` defaulted, the server fills the spec's own defaults even when
        # the manifest has no spec at all.
        spec["default"] = {}
        root["properties"]["spec"] = {key: spec[key] for key in _KEY_ORDER if key in spec}
    return root


def build_crd(kind: KindInfo) -> Schema:
    """The apiextensions.k8s.io/v1 CustomResourceDefinition of `kind`."""
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {
            "name": kind.crd_name,
            "labels": {"app.kubernetes.io/part-of": "trail-operator"},
        },
        "spec": {
            "group": kind.group,
            "names": {
                "kind": kind.kind,
                "listKind": f"{kind.kind}List",
                "plural": kind.plural,
                "singular": kind.singular,
                "shortNames": list(kind.short_names),
                "categories": list(kind.categories),
            },
            "scope": "Namespaced",
            "versions": [
                {
                    "name": kind.version,
                    "served": True,
                    "storage": True,
                    "subresources": {"status": {}},
                    "additionalPrinterColumns": [
                        column.to_crd() for column in kind.printer_columns
                    ],
                    "schema": {"openAPIV3Schema": object_schema(kind)},
                }
            ],
        },
    }
