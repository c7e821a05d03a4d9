"""The shipped audit policy (hack/audit-policy.yaml) logs what it promises.

The policy is evaluated here with the kube-apiserver's own matching rules
(k8s.io/apiserver/pkg/audit/policy/checker.go: first matching rule wins), so
each promise is checked without a server; the control-plane tests load the
same file into a real kube-apiserver.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

POLICY_PATH = Path(__file__).resolve().parents[2] / "hack" / "audit-policy.yaml"
LEVELS = ("None", "Metadata", "Request", "RequestResponse")
WRITE_VERBS = ("create", "update", "patch", "delete", "deletecollection")
READ_VERBS = ("get", "list", "watch")


@dataclass(frozen=True)
class Attributes:
    """What the API server knows of a request when it picks the audit level."""

    verb: str
    resource: str = ""
    subresource: str = ""
    group: str = ""
    namespace: str = ""
    name: str = ""
    path: str = ""
    user: str = "alice"
    groups: tuple[str, ...] = ("system:authenticated",)

    @property
    def is_resource_request(self) -> bool:
        return bool(self.resource)


def _path_matches(path: str, spec: str) -> bool:
    return spec in ("*", path) or (spec.endswith("*") and path.startswith(spec.rstrip("*")))


def _matches_resource(rule: dict[str, Any], request: Attributes) -> bool:
    if not request.is_resource_request:
        return False
    if rule.get("namespaces") and request.namespace not in rule["namespaces"]:
        return False
    if not rule.get("resources"):
        return True
    combined = request.resource
    if request.subresource:
        combined = f"{request.resource}/{request.subresource}"
    for group_resources in rule["resources"]:
        if group_resources.get("group", "") != request.group:
            continue
        resources = group_resources.get("resources") or []
        if not resources:
            return True
        names = group_resources.get("resourceNames") or []
        if names and request.name not in names:
            continue
        for resource in resources:
            if resource in (combined, "*"):
                return True
            if request.subresource and resource == f"*/{request.subresource}":
                return True
            if resource == f"{request.resource}/*":
                return True
    return False


def _matches(rule: dict[str, Any], request: Attributes) -> bool:
    if rule.get("users") and request.user not in rule["users"]:
        return False
    if rule.get("userGroups") and not set(rule["userGroups"]) & set(request.groups):
        return False
    if rule.get("verbs") and request.verb not in rule["verbs"]:
        return False
    if rule.get("namespaces") or rule.get("resources"):
        return _matches_resource(rule, request)
    if rule.get("nonResourceURLs"):
        return not request.is_resource_request and any(
            _path_matches(request.path, spec) for spec in rule["nonResourceURLs"]
        )
    return True


@pytest.fixture(scope="module")
def policy() -> dict[str, Any]:
    with POLICY_PATH.open() as handle:
        loaded: dict[str, Any] = yaml.safe_load(handle)
    return loaded


def level_of(policy: dict[str, Any], request: Attributes) -> str:
    for rule in policy["rules"]:
        if _matches(rule, request):
            return str(rule["level"])
    return "None"


def test_policy_is_an_audit_v1_policy_without_the_request_received_stage(
    policy: dict[str, Any],
) -> None:
    assert policy["apiVersion"] == "audit.k8s.io/v1"
    assert policy["kind"] == "Policy"
    assert policy["omitStages"] == ["RequestReceived"]
    assert all(rule["level"] in LEVELS for rule in policy["rules"])
    # The last rule catches everything, so no request goes unlogged by accident.
    assert policy["rules"][-1] == {"level": "Metadata"}


def test_no_rule_logs_response_bodies(policy: dict[str, Any]) -> None:
    assert all(rule["level"] != "RequestResponse" for rule in policy["rules"])


@pytest.mark.parametrize("verb", READ_VERBS + WRITE_VERBS)
@pytest.mark.parametrize(
    ("group", "resource", "subresource"),
    [
        ("", "secrets", ""),
        ("", "configmaps", ""),
        ("", "serviceaccounts", "token"),
        ("authentication.k8s.io", "tokenreviews", ""),
    ],
)
@pytest.mark.parametrize("user", ["alice", "system:serviceaccount:ci:deployer", "system:node:n1"])
def test_secret_bearing_resources_are_never_logged_with_their_bodies(
    policy: dict[str, Any], verb: str, group: str, resource: str, subresource: str, user: str
) -> None:
    request = Attributes(
        verb, resource, subresource, group=group, namespace="default", name="db", user=user
    )

    assert level_of(policy, request) == "Metadata"


@pytest.mark.parametrize(
    ("resource", "subresource", "verb"),
    [
        ("pods", "exec", "create"),
        ("pods", "exec", "get"),
        ("pods", "attach", "create"),
        ("pods", "portforward", "create"),
        ("pods", "log", "get"),
        ("pods", "proxy", "get"),
        ("services", "proxy", "create"),
        ("nodes", "proxy", "get"),
    ],
)
def test_data_access_into_pods_is_logged_as_metadata(
    policy: dict[str, Any], resource: str, subresource: str, verb: str
) -> None:
    request = Attributes(verb, resource, subresource, namespace="default", name="shell")

    assert level_of(policy, request) == "Metadata"


@pytest.mark.parametrize("verb", WRITE_VERBS)
@pytest.mark.parametrize(
    ("group", "resource"),
    [
        ("apps", "deployments"),
        ("", "pods"),
        ("rbac.authorization.k8s.io", "clusterrolebindings"),
        ("audit.trail-operator.dev", "eventdatastores"),
    ],
)
def test_writes_are_logged_with_their_request_body(
    policy: dict[str, Any], verb: str, group: str, resource: str
) -> None:
    request = Attributes(verb, resource, group=group, namespace="default", name="x")

    assert level_of(policy, request) == "Request"


@pytest.mark.parametrize("verb", READ_VERBS)
def test_other_reads_are_logged_as_metadata(policy: dict[str, Any], verb: str) -> None:
    request = Attributes(verb, "deployments", group="apps", namespace="default")

    assert level_of(policy, request) == "Metadata"


@pytest.mark.parametrize(
    "request_",
    [
        Attributes("get", "pods", namespace="default", user="system:apiserver"),
        Attributes(
            "update",
            "leases",
            group="coordination.k8s.io",
            namespace="kube-node-lease",
            name="worker-1",
            user="system:node:worker-1",
        ),
        Attributes(
            "get",
            "leases",
            group="coordination.k8s.io",
            namespace="kube-system",
            name="kube-scheduler",
            user="system:kube-scheduler",
        ),
        Attributes(
            "get",
            "endpoints",
            namespace="kube-system",
            name="kube-controller-manager",
            user="system:kube-controller-manager",
        ),
        Attributes("watch", "endpointslices", group="discovery.k8s.io", user="system:kube-proxy"),
        Attributes("get", path="/healthz"),
        Attributes("get", path="/healthz/etcd"),
        Attributes("get", path="/readyz"),
        Attributes("get", path="/livez/ping"),
        Attributes("get", path="/version"),
        Attributes("get", path="/openapi/v3/apis/apps/v1"),
        Attributes("list", "events", namespace="default"),
        Attributes("watch", "events", group="events.k8s.io", namespace="default"),
    ],
    ids=lambda request: f"{request.user}:{request.verb}:{request.resource or request.path}",
)
def test_control_plane_chatter_is_dropped(policy: dict[str, Any], request_: Attributes) -> None:
    assert level_of(policy, request_) == "None"


@pytest.mark.parametrize(
    ("request_", "level"),
    [
        # A person deleting a lease is not chatter.
        (
            Attributes(
                "delete",
                "leases",
                group="coordination.k8s.io",
                namespace="kube-system",
                name="kube-scheduler",
            ),
            "Request",
        ),
        # Leases elsewhere are application state.
        (
            Attributes(
                "update",
                "leases",
                group="coordination.k8s.io",
                namespace="default",
                name="my-app-leader",
            ),
            "Request",
        ),
        # The scheduler writing is not polling.
        (
            Attributes("create", "bindings", namespace="default", user="system:kube-scheduler"),
            "Request",
        ),
        (
            Attributes("create", "events", namespace="default", user="system:kube-scheduler"),
            "Metadata",
        ),
        # Discovery and unknown URLs are kept: probing for endpoints is worth seeing.
        (Attributes("get", path="/apis"), "Metadata"),
        (Attributes("get", path="/wp-admin"), "Metadata"),
        (Attributes("get", path="/versions"), "Metadata"),
    ],
    ids=lambda value: (
        value if isinstance(value, str) else f"{value.verb}:{value.resource or value.path}"
    ),
)
def test_near_misses_of_the_drop_rules_are_still_logged(
    policy: dict[str, Any], request_: Attributes, level: str
) -> None:
    assert level_of(policy, request_) == level
