"""The CRDs in `crds/` are what the models generate, are structural, and the models
refuse what the CRDs refuse. No server: `test_crds_on_apiserver.py` proves the same
manifests on the real kube-apiserver."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from crd_examples import INVALID_SPECS, VALID_EDS_SPEC, VALID_INTEGRATION_SPECS, VALID_TRAIL_SPEC
from pydantic import BaseModel, ValidationError

from trail_operator.crds import (
    ALL_KINDS,
    EVENT_DATA_STORE,
    INTEGRATION,
    TRAIL,
    EventDataStoreSpec,
    EventDataStoreStatus,
    IntegrationSpec,
    TrailSpec,
)
from trail_operator.crds.common import FIELDS, OPERATORS, FieldSelector
from trail_operator.crds.generate import HEADER, main, render_manifests
from trail_operator.crds.schema import StructuralSchemaError, build_crd, structural_schema

REPO_ROOT = Path(__file__).resolve().parents[2]
CRDS_DIR = REPO_ROOT / "crds"

# -- the files on disk --------------------------------------------------------------


def test_crds_directory_matches_the_models() -> None:
    for name, expected in render_manifests().items():
        path = CRDS_DIR / name
        assert path.exists(), f"{path} is missing; run `make crds`"
        assert path.read_text(encoding="utf-8") == expected, f"{path} is stale; run `make crds`"


def test_generation_is_deterministic() -> None:
    assert render_manifests() == render_manifests()


def test_every_generated_file_says_it_is_generated() -> None:
    for name, text in render_manifests().items():
        assert text.startswith(HEADER), name
        assert all(yaml.safe_load_all(text)), name


def test_check_fails_on_a_stale_file_and_passes_after_generating(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["--out", str(tmp_path)]) == 0
    assert main(["--check", "--out", str(tmp_path)]) == 0

    trails = tmp_path / "trails.yaml"
    trails.write_text(trails.read_text().replace("default: 60", "default: 61"))
    capsys.readouterr()
    assert main(["--check", "--out", str(tmp_path)]) == 1
    captured = capsys.readouterr()
    assert "-                    default: 61" in captured.out
    assert "trails.yaml" in captured.err
    assert "make crds" in captured.err


def test_check_fails_when_a_file_is_missing(tmp_path: Path) -> None:
    assert main(["--check", "--out", str(tmp_path)]) == 1


# -- structural schemas -------------------------------------------------------------


def schema_nodes(node: dict[str, Any], path: str) -> Iterator[tuple[str, dict[str, Any]]]:
    yield path, node
    for name, child in node.get("properties", {}).items():
        yield from schema_nodes(child, f"{path}.{name}")
    if isinstance(node.get("items"), dict):
        yield from schema_nodes(node["items"], f"{path}[]")
    if isinstance(node.get("additionalProperties"), dict):
        yield from schema_nodes(node["additionalProperties"], f"{path}{{}}")


@pytest.mark.parametrize("kind", ALL_KINDS, ids=lambda kind: kind.kind)
def test_schemas_are_structural(kind: Any) -> None:
    root = build_crd(kind)["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    for path, node in schema_nodes(root, kind.kind):
        assert "$ref" not in node, path
        assert not {"anyOf", "oneOf", "allOf", "not"} & node.keys(), path
        assert "type" in node or node.get("x-kubernetes-preserve-unknown-fields"), path
        assert not ("properties" in node and "additionalProperties" in node), path
        assert node.get("additionalProperties", {}) is not False, path
        assert "uniqueItems" not in node, path
        assert "title" not in node, path
        assert "default" not in node or node["default"] is not None, path
        for rule in node.get("x-kubernetes-validations", ()):
            assert rule["message"], path
            if "fieldPath" in rule:
                assert rule["fieldPath"].removeprefix(".") in node["properties"], path
    # Everything below spec and status is described for `kubectl explain`.
    for part in ("spec", "status"):
        for path, node in schema_nodes(root["properties"][part], f"{kind.kind}.{part}"):
            if node.get("type") != "string" or "description" in node:
                continue
            # Only list items and map values may go without a description of their own.
            assert path.endswith(("[]", "{}")), f"{path} has no description"


@pytest.mark.parametrize("kind", ALL_KINDS, ids=lambda kind: kind.kind)
def test_status_has_a_full_schema_with_conditions(kind: Any) -> None:
    root = build_crd(kind)["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    status = root["properties"]["status"]
    assert "x-kubernetes-preserve-unknown-fields" not in status
    assert "observedGeneration" in status["properties"]
    conditions = status["properties"]["conditions"]
    assert conditions["x-kubernetes-list-type"] == "map"
    assert conditions["x-kubernetes-list-map-keys"] == ["type"]
    assert set(conditions["items"]["required"]) == {
        "type",
        "status",
        "reason",
        "lastTransitionTime",
    }


def test_crd_names_columns_and_subresources() -> None:
    crds = {kind.kind: build_crd(kind) for kind in ALL_KINDS}
    short = {name: crd["spec"]["names"]["shortNames"] for name, crd in crds.items()}
    assert short == {"EventDataStore": ["eds"], "Trail": ["trail"], "Integration": ["integ"]}
    for crd in crds.values():
        assert crd["spec"]["group"] == "audit.trail-operator.dev"
        assert crd["spec"]["scope"] == "Namespaced"
        assert crd["spec"]["names"]["categories"] == ["trail-operator"]
        (version,) = crd["spec"]["versions"]
        assert version["name"] == "v1alpha1"
        assert version["subresources"] == {"status": {}}
    columns = crds["EventDataStore"]["spec"]["versions"][0]["additionalPrinterColumns"]
    assert [c["name"] for c in columns] == ["State", "Retention", "Events", "Table", "Ready", "Age"]
    ready = next(c for c in columns if c["name"] == "Ready")
    assert ready["jsonPath"] == '.status.conditions[?(@.type=="Ready")].status'


def test_eds_spec_defaults_to_empty_so_the_server_fills_its_defaults() -> None:
    spec = build_crd(EVENT_DATA_STORE)["spec"]["versions"][0]["schema"]["openAPIV3Schema"][
        "properties"
    ]["spec"]
    assert spec["default"] == {}
    defaults = {
        name: prop["default"] for name, prop in spec["properties"].items() if "default" in prop
    }
    assert defaults == EventDataStoreSpec().model_dump(exclude_none=True)


def test_specs_with_required_fields_make_spec_required() -> None:
    for kind in (TRAIL, INTEGRATION):
        root = build_crd(kind)["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
        assert root["required"] == ["spec"]
        assert "default" not in root["properties"]["spec"]


def test_unions_and_sets_are_refused_rather_than_mistranslated() -> None:
    class Union(BaseModel):
        value: int | str

    class UniqueSet(BaseModel):
        values: set[str]

    with pytest.raises(StructuralSchemaError, match="unions"):
        structural_schema(Union)
    with pytest.raises(StructuralSchemaError, match="x-kubernetes-list-type: set"):
        structural_schema(UniqueSet)


# -- the models ----------------------------------------------------------------------


def test_valid_specs_are_accepted_and_round_trip_in_camel_case() -> None:
    eds = EventDataStoreSpec.model_validate(VALID_EDS_SPEC)
    assert eds.retention_days == 30
    assert eds.advanced_event_selectors is not None
    selector = eds.advanced_event_selectors[0].field_selectors[2]
    assert selector.operators() == {"notStartsWith": ["system:"]}
    dumped = eds.model_dump(exclude_none=True)
    assert dumped["advancedEventSelectors"][0]["fieldSelectors"][2] == {
        "field": "userIdentity.username",
        "notStartsWith": ["system:"],
    }
    assert EventDataStoreSpec.model_validate(dumped) == eds

    trail = TrailSpec.model_validate(VALID_TRAIL_SPEC)
    assert trail.is_logging is True
    assert trail.s3.delivery_interval_seconds == 60
    assert trail.log_file_validation is not None
    assert trail.log_file_validation.digest_interval_seconds == 3600
    for spec in VALID_INTEGRATION_SPECS.values():
        IntegrationSpec.model_validate(spec)


def test_eds_defaults_follow_cloudtrail() -> None:
    spec = EventDataStoreSpec()
    assert spec.retention_days == 366
    assert spec.ingestion_enabled is True
    assert spec.termination_protection is True
    assert spec.deletion_policy == "Retain"
    assert spec.advanced_event_selectors is None


@pytest.mark.parametrize(
    ("model", "spec", "named"),
    [case[1:] for case in INVALID_SPECS],
    ids=[case[0] for case in INVALID_SPECS],
)
def test_models_refuse_invalid_specs(
    model: type[BaseModel], spec: dict[str, Any], named: str
) -> None:
    with pytest.raises(ValidationError) as caught:
        model.model_validate(spec)
    assert named in str(caught.value)


def test_status_written_by_the_operator_parses() -> None:
    status = EventDataStoreStatus.model_validate(
        {
            "state": "Enabled",
            "table": "trail.eds_default__apps_0123456789",
            "eventCount": 2**40,
            "bytesOnDisk": 12345,
            "oldestEventTime": "2025-01-01T00:00:00.000Z",
            "observedGeneration": 3,
            "conditions": [
                {
                    "type": "Ready",
                    "status": "True",
                    "reason": "TableReady",
                    "message": "ok",
                    "lastTransitionTime": "2025-01-01T00:00:00Z",
                    "observedGeneration": 3,
                }
            ],
        }
    )
    assert status.conditions[0].status == "True"
    with pytest.raises(ValidationError, match="duplicate"):
        EventDataStoreStatus.model_validate({"conditions": [status.conditions[0].model_dump()] * 2})


def test_selector_fields_and_operators_are_the_ones_the_spec_lists() -> None:
    assert FIELDS == (
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
    aliases = {info.alias for name, info in FieldSelector.model_fields.items() if name != "field"}
    assert aliases == set(OPERATORS)


def test_selector_enums_agree_with_the_selector_engine() -> None:
    selectors = pytest.importorskip("trail_operator.events.selectors")
    assert set(selectors.FIELDS) == set(FIELDS)
    assert set(selectors.OPERATORS) == set(OPERATORS)
