"""The generated `crds/` on the real kube-apiserver: they install, the server fills the
models' defaults, refuses bad specs naming the field, and refuses deleting a protected
EventDataStore. No controller-manager runs: test objects carry no finalizers, and
namespaces (which would never finish terminating) are unique and never deleted."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable
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
    KindInfo,
    TrailSpec,
)

pytestmark = pytest.mark.control_plane

CRDS_DIR = Path(__file__).resolve().parents[2] / "crds"
KIND_OF_MODEL: dict[type[BaseModel], KindInfo] = {
    EventDataStoreSpec: EVENT_DATA_STORE,
    TrailSpec: TRAIL,
    IntegrationSpec: INTEGRATION,
}
# Server-side expectations for INVALID_SPECS: the path the apiserver names.
SERVER_NAMES = {
    "retention below 7 days": "spec.retentionDays",
    "retention above 10 years": "spec.retentionDays",
    "unknown selector field": "spec.advancedEventSelectors[0].fieldSelectors[0].field",
    "unknown selector operator": "spec.advancedEventSelectors[0].fieldSelectors[0].contains",
    "selector without operator": "spec.advancedEventSelectors[0].fieldSelectors[0]",
    "empty operator list": "spec.advancedEventSelectors[0].fieldSelectors[0].equals",
    "readOnly compared by prefix": "spec.advancedEventSelectors[0].fieldSelectors[0].field",
    "readOnly value not a boolean": "spec.advancedEventSelectors[0].fieldSelectors[0]",
    "unknown deletion policy": "spec.deletionPolicy",
    "aws:kms without kmsKeyId": "spec.s3.kmsKeyId",
    "kmsKeyId without aws:kms": "spec.s3.kmsKeyId",
    "trail without bucket": "spec.s3.bucket",
    "both kinds of selectors": "spec.advancedEventSelectors",
    "duplicate namespaces": "spec.excludeNamespaces[1]",
    "sidecar without podSelector": "spec.podSelector",
    "sidecar without paths": "spec.paths",
    "s3Import without s3": "spec.s3",
    "s3 on a push integration": "spec.s3",
    "import window ends before it starts": "spec.s3.endTime",
    "no destinations": "spec.destinations",
    "unknown integration type": "spec.type",
}

Kubectl = Callable[..., Any]


def eventually(check: Callable[[], Any], timeout: float = 30, interval: float = 0.3) -> Any:
    """Poll until `check` returns something truthy; the last value (falsy) on timeout."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result or time.monotonic() > deadline:
            return result
        time.sleep(interval)


def manifest(kind: KindInfo, namespace: str, name: str, spec: dict[str, Any] | None) -> str:
    obj: dict[str, Any] = {
        "apiVersion": kind.api_version,
        "kind": kind.kind,
        "metadata": {"name": name, "namespace": namespace},
    }
    if spec is not None:
        obj["spec"] = spec
    return yaml.safe_dump(obj)


@pytest.fixture(scope="module")
def crds_installed(kubectl: Kubectl) -> None:
    kubectl("apply", "-f", CRDS_DIR)
    names = [f"crd/{kind.crd_name}" for kind in ALL_KINDS]
    kubectl("wait", "--for=condition=Established", "--timeout=60s", *names)
    # Discovery (what kubectl maps `eds` with) catches up a moment after Established.
    listed = eventually(
        lambda: kubectl("get", "eds,trail,integ", "-A", check=False).returncode == 0
    )
    assert listed, "the new kinds never showed up in discovery"


@pytest.fixture
def namespace(kubectl: Kubectl, crds_installed: None) -> str:
    name = f"crds-{uuid.uuid4().hex[:10]}"
    kubectl("create", "namespace", name)
    return name


def get(kubectl: Kubectl, kind: KindInfo, namespace: str, name: str) -> dict[str, Any]:
    out = kubectl("get", f"{kind.plural}.{kind.group}", name, "-n", namespace, "-o", "json")
    return dict(json.loads(out.stdout))


def test_crds_install_and_become_established(kubectl: Kubectl, crds_installed: None) -> None:
    for kind in ALL_KINDS:
        status = kubectl(
            "get",
            "crd",
            kind.crd_name,
            "-o",
            'jsonpath={.status.conditions[?(@.type=="Established")].status}',
        ).stdout
        assert status == "True", kind.crd_name
    resources = kubectl(
        "api-resources", "--api-group=audit.trail-operator.dev", "-o", "wide"
    ).stdout
    for kind in ALL_KINDS:
        assert kind.plural in resources
        assert kind.short_names[0] in resources
    # Re-applying the same manifests changes nothing.
    again = kubectl("apply", "-f", CRDS_DIR).stdout
    assert "configured" not in again, again
    assert "created" not in again, again


def test_server_fills_the_same_defaults_as_the_models(kubectl: Kubectl, namespace: str) -> None:
    kubectl("apply", "-f", "-", input=manifest(EVENT_DATA_STORE, namespace, "bare", None))
    spec = get(kubectl, EVENT_DATA_STORE, namespace, "bare")["spec"]
    assert spec == {
        "retentionDays": 366,
        "deletionPolicy": "Retain",
        "terminationProtection": True,
        "ingestionEnabled": True,
    }
    assert spec == EventDataStoreSpec().model_dump(exclude_none=True)

    cases = [
        (EVENT_DATA_STORE, EventDataStoreSpec, "full", VALID_EDS_SPEC),
        (TRAIL, TrailSpec, "trail", VALID_TRAIL_SPEC),
        *(
            (INTEGRATION, IntegrationSpec, name.lower(), spec)
            for name, spec in VALID_INTEGRATION_SPECS.items()
        ),
    ]
    for kind, model, name, sent in cases:
        kubectl("apply", "-f", "-", input=manifest(kind, namespace, name, sent))
        stored = get(kubectl, kind, namespace, name)["spec"]
        # What the server stores (with its defaults) is what the model makes of the same spec.
        assert stored == json.loads(model.model_validate(sent).model_dump_json(exclude_none=True))


@pytest.mark.parametrize(
    ("case", "model", "spec", "named"),
    INVALID_SPECS,
    ids=[case[0] for case in INVALID_SPECS],
)
def test_server_and_models_refuse_the_same_specs(
    kubectl: Kubectl,
    namespace: str,
    case: str,
    model: type[BaseModel],
    spec: dict[str, Any],
    named: str,
) -> None:
    with pytest.raises(ValidationError):
        model.model_validate(spec)
    kind = KIND_OF_MODEL[model]
    result = kubectl("apply", "-f", "-", input=manifest(kind, namespace, "bad", spec), check=False)
    assert result.returncode != 0, f"the apiserver accepted {case}: {result.stdout}"
    assert SERVER_NAMES[case] in result.stderr, result.stderr


def test_retention_days_message_names_the_field_and_the_bound(
    kubectl: Kubectl, namespace: str
) -> None:
    result = kubectl(
        "apply",
        "-f",
        "-",
        input=manifest(EVENT_DATA_STORE, namespace, "short", {"retentionDays": 3}),
        check=False,
    )
    assert "spec.retentionDays" in result.stderr
    assert "greater than or equal to 7" in result.stderr


def test_trail_with_kms_but_no_key_is_refused_with_the_reason(
    kubectl: Kubectl, namespace: str
) -> None:
    spec = {"s3": {"bucket": "audit-logs", "serverSideEncryption": "aws:kms"}}
    result = kubectl("apply", "-f", "-", input=manifest(TRAIL, namespace, "kms", spec), check=False)
    assert result.returncode != 0
    assert "spec.s3.kmsKeyId" in result.stderr
    assert "kmsKeyId is required when serverSideEncryption is aws:kms" in result.stderr


def test_status_from_the_model_is_accepted_and_shown_in_columns(
    kubectl: Kubectl, namespace: str
) -> None:
    kubectl("apply", "-f", "-", input=manifest(EVENT_DATA_STORE, namespace, "shown", {}))
    status = EventDataStoreStatus.model_validate(
        {
            "state": "Enabled",
            "table": "trail.eds_shown",
            "eventCount": 2**40,
            "bytesOnDisk": 1024,
            "newestEventTime": "2025-06-01T12:00:00.123Z",
            "observedGeneration": 1,
            "conditions": [
                {
                    "type": "Ready",
                    "status": "True",
                    "reason": "TableReady",
                    "message": "table ready",
                    "lastTransitionTime": "2025-06-01T12:00:00Z",
                }
            ],
        }
    )
    patch = json.dumps({"status": json.loads(status.model_dump_json(exclude_none=True))})
    kubectl(
        "patch",
        "eventdatastores.audit.trail-operator.dev",
        "shown",
        "-n",
        namespace,
        "--subresource=status",
        "--type=merge",
        "-p",
        patch,
    )
    stored = get(kubectl, EVENT_DATA_STORE, namespace, "shown")["status"]
    assert EventDataStoreStatus.model_validate(stored) == status
    table = kubectl("get", "eds", "shown", "-n", namespace).stdout.split("\n")
    header, row = table[0].split(), table[1].split()
    assert header == ["NAME", "STATE", "RETENTION", "EVENTS", "TABLE", "READY", "AGE"]
    assert row[:6] == ["shown", "Enabled", "366", str(2**40), "trail.eds_shown", "True"]
    # The category lists every kind of the operator at once.
    assert "shown" in kubectl("get", "trail-operator", "-n", namespace).stdout


def test_deleting_a_protected_event_data_store_is_refused_until_unprotected(
    kubectl: Kubectl, namespace: str
) -> None:
    kubectl("apply", "-f", "-", input=manifest(EVENT_DATA_STORE, namespace, "kept", {}))
    obj = get(kubectl, EVENT_DATA_STORE, namespace, "kept")
    assert obj["spec"]["terminationProtection"] is True
    assert not obj["metadata"].get("finalizers")

    # The policy takes effect a moment after it is created: probe with a server dry run.
    def refused() -> bool:
        probe = kubectl("delete", "eds", "kept", "-n", namespace, "--dry-run=server", check=False)
        return probe.returncode != 0

    assert eventually(refused), "the termination-protection policy never refused a delete"
    result = kubectl("delete", "eds", "kept", "-n", namespace, check=False)
    assert result.returncode != 0
    assert (
        f"EventDataStore {namespace}/kept has terminationProtection enabled; "
        "set spec.terminationProtection to false before deleting it"
    ) in result.stderr
    kubectl("get", "eds", "kept", "-n", namespace)

    kubectl(
        "patch",
        "eds",
        "kept",
        "-n",
        namespace,
        "--type=merge",
        "-p",
        '{"spec":{"terminationProtection":false}}',
    )
    kubectl("delete", "eds", "kept", "-n", namespace, "--wait=true", "--timeout=30s")
    gone = kubectl("get", "eds", "kept", "-n", namespace, check=False)
    assert gone.returncode != 0
    assert "NotFound" in gone.stderr


def test_unprotected_event_data_store_deletes_at_once(kubectl: Kubectl, namespace: str) -> None:
    spec = {"terminationProtection": False, "deletionPolicy": "Delete"}
    kubectl("apply", "-f", "-", input=manifest(EVENT_DATA_STORE, namespace, "scratch", spec))
    kubectl("delete", "eds", "scratch", "-n", namespace, "--wait=true", "--timeout=30s")
