"""Kubernetes audit events become CloudTrail-shaped records (events/k8s_audit.py)."""

from __future__ import annotations

import copy
import re
import uuid
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from events.audit_samples import (
    APPLY_SECRET,
    CREATE_DEPLOYMENT,
    CREATE_TOKEN_REQUEST,
    CREATE_TOKEN_REVIEW,
    DELETE_COLLECTION_JOBS,
    DELETE_DEPLOYMENT,
    EXEC_POD,
    FORBIDDEN_LIST_SECRETS,
    GET_API_RESOURCE_LIST,
    GET_POD_LOG,
    GET_SECRET,
    GET_VERSION,
    IMPERSONATED_LIST_PODS,
    JSON_PATCH_SECRET,
    LIST_CONFIGMAPS,
    LIST_SECRETS_TABLE,
    MERGE_PATCH_SECRET,
    NODE_PATCH_POD_STATUS,
    PATCH_DEPLOYMENT,
    PATCH_DEPLOYMENT_SCALE,
    PORT_FORWARD_POD,
    SECRET_VALUES,
    SERVICE_ACCOUNT_GET_CONFIGMAP,
    WATCH_PODS,
    WATCH_PODS_STARTED,
    damaged_event,
    event_list,
    sample_events,
)
from trail_operator.events.k8s_audit import (
    LAST_APPLIED_ANNOTATION,
    REDACTED,
    AuditEventError,
    AuditEventNormalizer,
    AuditPayloadError,
    AuditRejection,
    parse_event_time,
)
from trail_operator.events.record import EVENT_VERSION, RECORD_FIELDS, Record

CLUSTER = "prod-eu"
REGION = "eu-west-1"
EVENT_TIME = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$")


@pytest.fixture
def normalizer() -> AuditEventNormalizer:
    return AuditEventNormalizer(cluster_name=CLUSTER, region=REGION)


def record_of(normalizer: AuditEventNormalizer, event: dict[str, Any]) -> Record:
    record = normalizer.normalize(event)
    assert record is not None
    return record


def request(
    verb: str,
    resource: str | None,
    *,
    group: str = "",
    subresource: str = "",
    uri: str = "/api/v1/namespaces/default/things",
) -> dict[str, Any]:
    """A Metadata-level event of the given request shape."""
    event = copy.deepcopy(WATCH_PODS)
    event["verb"] = verb
    event["requestURI"] = uri
    if resource is None:
        del event["objectRef"]
    else:
        event["objectRef"] = {"resource": resource, "namespace": "default", "apiVersion": "v1"}
        if group:
            event["objectRef"]["apiGroup"] = group
        if subresource:
            event["objectRef"]["subresource"] = subresource
    return event


def assert_store_safe(record: Record) -> None:
    """Every typed column gets a value of its type (a bad one fails a whole insert)."""
    assert set(record) == set(RECORD_FIELDS)
    assert uuid.UUID(record["eventID"])
    assert EVENT_TIME.match(record["eventTime"])
    for field in (
        "eventSource",
        "eventName",
        "eventCategory",
        "sourceIPAddress",
        "userAgent",
        "requestID",
        "namespace",
        "recipientAccountId",
        "awsRegion",
    ):
        assert type(record[field]) is str, field
    assert type(record["readOnly"]) is bool
    assert type(record["managementEvent"]) is bool
    assert record["errorCode"] is None or type(record["errorCode"]) is str
    assert record["errorMessage"] is None or type(record["errorMessage"]) is str
    identity = record["userIdentity"]
    for field in ("type", "principalId", "accountId", "username", "uid"):
        assert type(identity[field]) is str, field
    assert all(type(group) is str for group in identity["groups"])
    for values in identity["extra"].values():
        assert all(type(value) is str for value in values)
    for resource in record["resources"]:
        assert all(type(resource[key]) is str for key in resource)
    orjson.dumps(record)


# -- the record ------------------------------------------------------------------------


def test_create_deployment_becomes_a_management_write_record(
    normalizer: AuditEventNormalizer,
) -> None:
    record = record_of(normalizer, CREATE_DEPLOYMENT)

    assert record["eventID"] == CREATE_DEPLOYMENT["auditID"]
    assert record["requestID"] == CREATE_DEPLOYMENT["auditID"]
    assert record["eventTime"] == "2026-11-25T22:28:05.743Z"
    assert record["eventVersion"] == EVENT_VERSION
    assert record["eventSource"] == "apps.k8s.io"
    assert record["eventName"] == "CreateDeployment"
    assert record["eventType"] == "KubernetesApiCall"
    assert record["eventCategory"] == "Management"
    assert record["managementEvent"] is True
    assert record["readOnly"] is False
    assert record["sourceIPAddress"] == "203.0.113.10"
    assert record["userAgent"].startswith("kubectl/")
    assert record["namespace"] == "default"
    assert record["recipientAccountId"] == CLUSTER
    assert record["awsRegion"] == REGION
    assert record["errorCode"] is None
    assert record["errorMessage"] is None
    assert record["requestParameters"] == CREATE_DEPLOYMENT["requestObject"]
    assert record["responseElements"] == CREATE_DEPLOYMENT["responseObject"]
    assert record["resources"] == [
        {
            "type": "deployments",
            "name": "web",
            "namespace": "default",
            "apiGroup": "apps",
            # From the created object: a create's objectRef has no uid.
            "uid": "b20807c2-5785-4f63-825e-154684f14844",
        }
    ]


def test_every_sample_becomes_one_store_safe_record(normalizer: AuditEventNormalizer) -> None:
    records, rejections = normalizer.normalize_list(event_list(*sample_events()))

    assert rejections == []
    assert len(records) == len(sample_events())
    for record in records:
        assert_store_safe(record)


def test_stages_before_the_final_one_are_not_records(normalizer: AuditEventNormalizer) -> None:
    received = {**WATCH_PODS, "stage": "RequestReceived"}

    assert normalizer.normalize(WATCH_PODS_STARTED) is None
    assert normalizer.normalize(received) is None
    records, rejections = normalizer.normalize_list(
        event_list(received, WATCH_PODS_STARTED, WATCH_PODS)
    )
    assert [record["eventID"] for record in records] == [WATCH_PODS["auditID"]]
    assert rejections == []


def test_panic_stage_is_recorded_as_an_internal_error(normalizer: AuditEventNormalizer) -> None:
    panic = {
        **GET_SECRET,
        "stage": "Panic",
        "responseStatus": {
            "metadata": {},
            "status": "Failure",
            "message": "APIServer panic'd: runtime error",
            "reason": "InternalError",
            "code": 500,
        },
    }

    record = record_of(normalizer, panic)

    assert record["errorCode"] == "InternalError"
    assert record["errorMessage"] == "APIServer panic'd: runtime error"
    assert record["additionalEventData"]["stage"] == "Panic"


def test_additional_event_data_holds_level_stage_uri_code_and_annotations(
    normalizer: AuditEventNormalizer,
) -> None:
    record = record_of(normalizer, IMPERSONATED_LIST_PODS)

    assert record["additionalEventData"] == {
        "auditLevel": "Metadata",
        "stage": "ResponseComplete",
        "requestURI": "/api/v1/namespaces/default/pods?limit=500",
        "responseCode": 200,
        "annotations": IMPERSONATED_LIST_PODS["annotations"],
    }


# -- names, sources, categories ----------------------------------------------------------


@pytest.mark.parametrize(
    ("event", "name"),
    [
        (GET_SECRET, "GetSecret"),
        (LIST_CONFIGMAPS, "ListConfigMap"),
        (WATCH_PODS, "WatchPod"),
        (PATCH_DEPLOYMENT, "PatchDeployment"),
        (PATCH_DEPLOYMENT_SCALE, "PatchDeploymentScale"),
        (DELETE_DEPLOYMENT, "DeleteDeployment"),
        (DELETE_COLLECTION_JOBS, "DeleteCollectionJob"),
        (EXEC_POD, "ExecPod"),
        (PORT_FORWARD_POD, "PortForwardPod"),
        (GET_POD_LOG, "GetPodLog"),
        (NODE_PATCH_POD_STATUS, "PatchPodStatus"),
        (CREATE_TOKEN_REQUEST, "CreateServiceAccountToken"),
        (CREATE_TOKEN_REVIEW, "CreateTokenReview"),
        (GET_VERSION, "GetVersion"),
        (GET_API_RESOURCE_LIST, "GetAPIResourceList"),
    ],
)
def test_event_name_is_verb_and_kind(
    normalizer: AuditEventNormalizer, event: dict[str, Any], name: str
) -> None:
    assert record_of(normalizer, event)["eventName"] == name


@pytest.mark.parametrize(
    ("verb", "group", "resource", "subresource", "name"),
    [
        ("list", "", "configmaps", "", "ListConfigMap"),
        ("create", "networking.k8s.io", "networkpolicies", "", "CreateNetworkPolicy"),
        ("get", "networking.k8s.io", "ingresses", "", "GetIngress"),
        ("get", "", "endpoints", "", "GetEndpoints"),
        (
            "create",
            "apiextensions.k8s.io",
            "customresourcedefinitions",
            "",
            "CreateCustomResourceDefinition",
        ),
        ("patch", "audit.trail-operator.dev", "eventdatastores", "", "PatchEventDataStore"),
        ("update", "apps", "deployments", "status", "UpdateDeploymentStatus"),
        ("get", "apps", "statefulsets", "scale", "GetStatefulSetScale"),
        ("create", "", "pods", "eviction", "CreatePodEviction"),
        ("create", "", "pods", "attach", "AttachPod"),
        ("get", "", "pods", "exec", "ExecPod"),
        ("get", "", "services", "proxy", "ProxyService"),
        ("delete", "", "nodes", "proxy", "ProxyNode"),
        ("update", "", "namespaces", "finalize", "UpdateNamespaceFinalize"),
        # Custom resources outside the table: de-pluralized and split into words.
        ("list", "monitoring.coreos.com", "servicemonitors", "", "ListServiceMonitor"),
        ("get", "cert-manager.io", "certificaterequests", "", "GetCertificateRequest"),
        ("watch", "monitoring.coreos.com", "prometheusrules", "", "WatchPrometheusRule"),
        ("create", "networking.istio.io", "virtualservices", "", "CreateVirtualService"),
        ("create", "example.com", "widgets", "", "CreateWidget"),
        ("create", "example.com", "boxes", "", "CreateBox"),
        ("get", "example.com", "zorblaxes", "", "GetZorblax"),
    ],
)
def test_event_name_for_request_shapes(
    normalizer: AuditEventNormalizer,
    verb: str,
    group: str,
    resource: str,
    subresource: str,
    name: str,
) -> None:
    event = request(verb, resource, group=group, subresource=subresource)

    assert record_of(normalizer, event)["eventName"] == name


def test_names_no_kubernetes_resource_can_have_are_not_named_one_by_one(
    normalizer: AuditEventNormalizer,
) -> None:
    # Requests for resources that do not exist are audited too, URL and all.
    resource = "a" * 100_000
    event = request("get", resource, group="example.com", subresource="b" * 64)

    record = record_of(normalizer, event)

    assert record["eventName"] == "GetInvalidResourceInvalidSubresource"
    assert record["resources"][0]["type"] == f"{resource}/{'b' * 64}"


@pytest.mark.parametrize(
    ("verb", "uri", "name"),
    [
        ("get", "/version", "GetVersion"),
        ("get", "/healthz", "GetHealthz"),
        ("get", "/readyz/etcd?verbose", "GetReadyz"),
        ("get", "/livez", "GetLivez"),
        ("get", "/openapi/v3/apis/apps/v1?hash=38014E", "GetOpenAPI"),
        ("get", "/metrics", "GetMetrics"),
        ("get", "/.well-known/openid-configuration", "GetOpenIDConfiguration"),
        ("get", "/api", "GetAPIVersions"),
        ("get", "/api/v1", "GetAPIResourceList"),
        ("get", "/apis", "GetAPIGroupList"),
        ("get", "/apis/apps", "GetAPIGroup"),
        ("get", "/apis/apps/v1", "GetAPIResourceList"),
        ("get", "/", "GetRoot"),
        # Caller-chosen paths must not mint new event names.
        ("get", "/wp-admin/install.php", "GetNonResourceURL"),
        ("post", "/anything", "PostNonResourceURL"),
    ],
)
def test_non_resource_urls_get_a_bounded_set_of_names(
    normalizer: AuditEventNormalizer, verb: str, uri: str, name: str
) -> None:
    record = record_of(normalizer, request(verb, None, uri=uri))

    assert record["eventName"] == name
    assert record["eventSource"] == "k8s.io"
    assert record["resources"] == []
    assert record["namespace"] == ""
    assert record["additionalEventData"]["requestURI"] == uri


@pytest.mark.parametrize(
    ("group", "source"),
    [
        ("", "k8s.io"),
        ("apps", "apps.k8s.io"),
        ("batch", "batch.k8s.io"),
        ("rbac.authorization.k8s.io", "rbac.authorization.k8s.io"),
        ("audit.trail-operator.dev", "audit.trail-operator.dev"),
    ],
)
def test_event_source_is_the_api_group(
    normalizer: AuditEventNormalizer, group: str, source: str
) -> None:
    event = request("get", "things", group=group)

    assert record_of(normalizer, event)["eventSource"] == source


@pytest.mark.parametrize(
    ("verb", "group", "resource", "subresource", "category"),
    [
        ("get", "", "secrets", "", "Data"),
        ("list", "", "secrets", "", "Data"),
        ("watch", "", "configmaps", "", "Data"),
        ("get", "", "configmaps", "", "Data"),
        ("create", "", "secrets", "", "Management"),
        ("delete", "", "configmaps", "", "Management"),
        ("create", "", "pods", "exec", "Data"),
        ("get", "", "pods", "exec", "Data"),
        ("create", "", "pods", "attach", "Data"),
        ("create", "", "pods", "portforward", "Data"),
        ("get", "", "pods", "log", "Data"),
        ("get", "", "services", "proxy", "Data"),
        ("get", "", "nodes", "proxy", "Data"),
        ("get", "", "pods", "", "Management"),
        ("update", "", "pods", "status", "Management"),
        # A custom resource that happens to be called secrets is not a Secret.
        ("get", "vault.example.com", "secrets", "", "Management"),
    ],
)
def test_data_events_are_reads_of_secrets_and_configmaps_and_pod_data_access(
    normalizer: AuditEventNormalizer,
    verb: str,
    group: str,
    resource: str,
    subresource: str,
    category: str,
) -> None:
    record = record_of(normalizer, request(verb, resource, group=group, subresource=subresource))

    assert record["eventCategory"] == category
    assert record["managementEvent"] is (category == "Management")


@pytest.mark.parametrize(
    ("verb", "resource", "subresource", "read_only"),
    [
        ("get", "pods", "", True),
        ("list", "pods", "", True),
        ("watch", "pods", "", True),
        ("create", "pods", "", False),
        ("update", "pods", "", False),
        ("patch", "pods", "", False),
        ("delete", "pods", "", False),
        ("deletecollection", "pods", "", False),
        ("get", "pods", "log", True),
        # A shell is never read-only, even when a websocket carried it as a GET.
        ("get", "pods", "exec", False),
        ("get", "pods", "attach", False),
        ("get", "pods", "portforward", False),
        ("get", None, "", True),
        ("post", None, "", False),
    ],
)
def test_read_only_follows_the_verb(
    normalizer: AuditEventNormalizer,
    verb: str,
    resource: str | None,
    subresource: str,
    read_only: bool,
) -> None:
    event = request(verb, resource, subresource=subresource, uri="/version")

    assert record_of(normalizer, event)["readOnly"] is read_only


def test_event_without_object_ref_is_named_from_its_request_uri(
    normalizer: AuditEventNormalizer,
) -> None:
    event = {key: value for key, value in GET_SECRET.items() if key != "objectRef"}

    record = record_of(normalizer, event)

    assert record["eventName"] == "GetSecret"
    assert record["eventCategory"] == "Data"
    assert record["namespace"] == "default"
    assert record["resources"] == [
        {
            "type": "secrets",
            "name": "db",
            "namespace": "default",
            "apiGroup": "",
            "uid": "c0d183de-e676-41cf-b3b3-e2192f8c4d3d",
        }
    ]
    assert record["responseElements"]["data"] == {"password": REDACTED, "user": REDACTED}


def test_resources_name_the_subresource_and_the_deleted_uid(
    normalizer: AuditEventNormalizer,
) -> None:
    exec_record = record_of(normalizer, EXEC_POD)
    delete_record = record_of(normalizer, DELETE_DEPLOYMENT)

    assert exec_record["resources"] == [
        {"type": "pods/exec", "name": "shell", "namespace": "default", "apiGroup": "", "uid": ""}
    ]
    assert delete_record["resources"][0]["uid"] == "b20807c2-5785-4f63-825e-154684f14844"


def test_cluster_scoped_list_has_an_empty_namespace(normalizer: AuditEventNormalizer) -> None:
    record = record_of(normalizer, LIST_CONFIGMAPS)

    assert record["namespace"] == ""
    assert record["resources"] == [
        {"type": "configmaps", "name": "", "namespace": "", "apiGroup": "", "uid": ""}
    ]


# -- identity ----------------------------------------------------------------------------


def test_impersonated_request_records_the_real_caller_in_impersonated_by(
    normalizer: AuditEventNormalizer,
) -> None:
    identity = record_of(normalizer, IMPERSONATED_LIST_PODS)["userIdentity"]

    assert identity["type"] == "User"
    assert identity["username"] == "bob"
    assert identity["principalId"] == "bob"
    assert identity["groups"] == ["dev", "system:authenticated"]
    assert identity["impersonatedBy"] == {
        "username": "admin",
        "uid": "admin-uid",
        "groups": ["system:masters", "system:authenticated"],
    }


def test_impersonation_leaves_the_resource_uid_alone(normalizer: AuditEventNormalizer) -> None:
    event = copy.deepcopy(IMPERSONATED_LIST_PODS)
    event["verb"] = "get"
    event["objectRef"].update(name="web-0", uid="pod-uid-1")
    event["impersonatedUser"]["uid"] = "bob-uid"

    record = record_of(normalizer, event)

    assert record["resources"][0]["uid"] == "pod-uid-1"
    assert record["userIdentity"]["uid"] == "bob-uid"


def test_direct_request_has_no_impersonator(normalizer: AuditEventNormalizer) -> None:
    identity = record_of(normalizer, FORBIDDEN_LIST_SECRETS)["userIdentity"]

    assert identity == {
        "type": "User",
        "principalId": "alice-uid",
        "accountId": CLUSTER,
        "username": "alice",
        "uid": "alice-uid",
        "groups": ["dev", "system:authenticated"],
        "extra": {},
        "impersonatedBy": None,
    }


def test_service_account_identity_keeps_its_extra(normalizer: AuditEventNormalizer) -> None:
    identity = record_of(normalizer, SERVICE_ACCOUNT_GET_CONFIGMAP)["userIdentity"]

    assert identity["type"] == "ServiceAccount"
    assert identity["principalId"] == "3b9a8f5e-1c2d-4e6f-8a9b-0c1d2e3f4a5b"
    assert identity["extra"]["authentication.kubernetes.io/pod-name"] == ["grafana-6d8f9c7b5-x2k4p"]


@pytest.mark.parametrize(
    ("username", "identity_type"),
    [
        ("system:serviceaccount:kube-system:replicaset-controller", "ServiceAccount"),
        ("system:node:worker-1", "Node"),
        ("system:kube-scheduler", "System"),
        ("system:kube-controller-manager", "System"),
        ("system:anonymous", "Anonymous"),
        ("alice@example.com", "User"),
        ("", "Unknown"),
    ],
)
def test_identity_type_follows_kubernetes_username_conventions(
    normalizer: AuditEventNormalizer, username: str, identity_type: str
) -> None:
    event = {**WATCH_PODS, "user": {"username": username, "groups": []}}

    identity = record_of(normalizer, event)["userIdentity"]

    assert identity["type"] == identity_type
    # Without a uid the username is the principal.
    assert identity["principalId"] == username


# -- errors ------------------------------------------------------------------------------


def test_forbidden_request_gets_error_code_forbidden(normalizer: AuditEventNormalizer) -> None:
    record = record_of(normalizer, FORBIDDEN_LIST_SECRETS)

    assert record["errorCode"] == "Forbidden"
    assert record["errorMessage"] == (
        'secrets is forbidden: User "alice" cannot list resource "secrets" in API group ""'
        ' in the namespace "default"'
    )
    assert record["additionalEventData"]["responseCode"] == 403
    assert record["additionalEventData"]["annotations"]["authorization.k8s.io/decision"] == (
        "forbid"
    )


@pytest.mark.parametrize(
    ("code", "error_code"),
    [
        (404, "NotFound"),
        (409, "Conflict"),
        (429, "TooManyRequests"),
        (503, "ServiceUnavailable"),
        (599, "Http599"),
    ],
)
def test_failure_without_a_reason_gets_the_http_reason_phrase(
    normalizer: AuditEventNormalizer, code: int, error_code: str
) -> None:
    event = {**WATCH_PODS, "responseStatus": {"metadata": {}, "code": code}}

    record = record_of(normalizer, event)

    assert record["errorCode"] == error_code
    assert record["errorMessage"] is None


def test_successful_and_switching_protocols_responses_have_no_error(
    normalizer: AuditEventNormalizer,
) -> None:
    assert record_of(normalizer, EXEC_POD)["errorCode"] is None
    assert record_of(normalizer, GET_POD_LOG)["errorCode"] is None


# -- redaction ---------------------------------------------------------------------------


def test_secret_data_is_redacted_in_response_elements(normalizer: AuditEventNormalizer) -> None:
    record = record_of(normalizer, GET_SECRET)

    secret = record["responseElements"]
    assert secret["data"] == {"password": REDACTED, "user": REDACTED}
    assert secret["metadata"]["name"] == "db"
    assert secret["type"] == "Opaque"


def test_secret_data_is_redacted_in_request_parameters(normalizer: AuditEventNormalizer) -> None:
    record = record_of(normalizer, APPLY_SECRET)

    for body in (record["requestParameters"], record["responseElements"]):
        assert body["data"] == {"token": REDACTED}
        assert body["metadata"]["annotations"] == {LAST_APPLIED_ANNOTATION: REDACTED}


def test_secret_string_data_is_redacted(normalizer: AuditEventNormalizer) -> None:
    event = copy.deepcopy(APPLY_SECRET)
    event["requestObject"]["stringData"] = {"token": "s3cr3t"}

    record = record_of(normalizer, event)

    assert record["requestParameters"]["stringData"] == {"token": REDACTED}


def test_merge_patch_of_a_secret_is_redacted(normalizer: AuditEventNormalizer) -> None:
    event = copy.deepcopy(MERGE_PATCH_SECRET)
    event["requestObject"]["data"]["old"] = None  # a merge patch deleting a key

    record = record_of(normalizer, event)

    # A patch body has no kind; the objectRef says it is a Secret.
    assert record["requestParameters"] == {"data": {"password": REDACTED, "old": None}}
    assert record["responseElements"]["data"] == {"password": REDACTED, "user": REDACTED}


def test_json_patch_of_a_secret_is_redacted(normalizer: AuditEventNormalizer) -> None:
    event = copy.deepcopy(JSON_PATCH_SECRET)
    event["requestObject"] += [
        {"op": "add", "path": "/data", "value": {"a": "YQ==", "b": "Yg=="}},
        {"op": "add", "path": "/stringData/c", "value": "clear"},
        {"op": "test", "path": "/data/a", "value": "YQ=="},
        {
            "op": "replace",
            "path": "/metadata/annotations/kubectl.kubernetes.io~1last-applied-configuration",
            "value": '{"data":{"a":"YQ=="}}',
        },
        {"op": "add", "path": "/metadata/labels/tier", "value": "db"},
        {"op": "remove", "path": "/data/b"},
        {"op": "move", "from": "/data/a", "path": "/data/z"},
    ]

    record = record_of(normalizer, event)

    assert record["requestParameters"] == [
        {"op": "replace", "path": "/data/user", "value": REDACTED},
        {"op": "add", "path": "/data", "value": {"a": REDACTED, "b": REDACTED}},
        {"op": "add", "path": "/stringData/c", "value": REDACTED},
        {"op": "test", "path": "/data/a", "value": REDACTED},
        {
            "op": "replace",
            "path": "/metadata/annotations/kubectl.kubernetes.io~1last-applied-configuration",
            "value": REDACTED,
        },
        {"op": "add", "path": "/metadata/labels/tier", "value": "db"},
        {"op": "remove", "path": "/data/b"},
        {"op": "move", "from": "/data/a", "path": "/data/z"},
    ]


def test_secret_table_rows_lose_the_last_applied_annotation(
    normalizer: AuditEventNormalizer,
) -> None:
    record = record_of(normalizer, LIST_SECRETS_TABLE)

    rows = record["responseElements"]["rows"]
    assert rows[0]["object"]["metadata"]["annotations"] == {LAST_APPLIED_ANNOTATION: REDACTED}
    assert rows[0]["cells"] == ["applied", "Opaque", 1, "0s"]
    assert rows[1]["object"]["metadata"]["name"] == "db"


def test_secret_list_items_are_redacted(normalizer: AuditEventNormalizer) -> None:
    event = copy.deepcopy(LIST_SECRETS_TABLE)
    event["responseObject"] = {
        "kind": "SecretList",
        "apiVersion": "v1",
        "metadata": {"resourceVersion": "234"},
        "items": [{"metadata": {"name": "db"}, "data": {"password": "aHVudGVyMg=="}}],
    }

    record = record_of(normalizer, event)

    assert record["responseElements"]["items"] == [
        {"metadata": {"name": "db"}, "data": {"password": REDACTED}}
    ]


def test_secrets_inside_a_generic_list_are_redacted_whatever_the_request(
    normalizer: AuditEventNormalizer,
) -> None:
    event = copy.deepcopy(CREATE_DEPLOYMENT)
    deployment = event["requestObject"]
    event["requestObject"] = {
        "kind": "List",
        "apiVersion": "v1",
        "items": [deployment, {"kind": "Secret", "apiVersion": "v1", "data": {"k": "dg=="}}],
    }

    record = record_of(normalizer, event)

    items = record["requestParameters"]["items"]
    assert items[0] is deployment
    assert items[1]["data"] == {"k": REDACTED}


def test_bearer_tokens_are_redacted(normalizer: AuditEventNormalizer) -> None:
    token_request = record_of(normalizer, CREATE_TOKEN_REQUEST)
    token_review = record_of(normalizer, CREATE_TOKEN_REVIEW)

    assert token_request["responseElements"]["status"]["token"] == REDACTED
    assert token_request["responseElements"]["status"]["expirationTimestamp"]
    assert token_review["requestParameters"]["spec"] == {"token": REDACTED}
    assert token_review["responseElements"]["spec"] == {"token": REDACTED}
    assert token_review["responseElements"]["status"]["authenticated"] is True


def test_no_record_contains_a_secret_value(normalizer: AuditEventNormalizer) -> None:
    records, _ = normalizer.normalize_list(event_list(*sample_events()))

    text = orjson.dumps(records).decode()
    assert REDACTED in text
    for value in SECRET_VALUES:
        assert value not in text


def test_configmap_bodies_are_kept(normalizer: AuditEventNormalizer) -> None:
    event = copy.deepcopy(CREATE_DEPLOYMENT)
    event["objectRef"] = {"resource": "configmaps", "namespace": "default", "name": "settings"}
    event["requestObject"] = {"kind": "ConfigMap", "data": {"mode": "fast"}}

    record = record_of(normalizer, event)

    assert record["requestParameters"] == {"kind": "ConfigMap", "data": {"mode": "fast"}}


def test_normalize_does_not_modify_the_event(normalizer: AuditEventNormalizer) -> None:
    events = sample_events()
    before = copy.deepcopy(events)

    normalizer.normalize_list(event_list(*events))

    assert events == before


def test_bodies_without_secrets_are_passed_through_not_copied(
    normalizer: AuditEventNormalizer,
) -> None:
    record = record_of(normalizer, CREATE_DEPLOYMENT)

    assert record["requestParameters"] is CREATE_DEPLOYMENT["requestObject"]
    assert record["responseElements"] is CREATE_DEPLOYMENT["responseObject"]


def test_metadata_level_events_have_no_parameters_or_elements(
    normalizer: AuditEventNormalizer,
) -> None:
    record = record_of(normalizer, WATCH_PODS)

    assert record["requestParameters"] is None
    assert record["responseElements"] is None


# -- time and IDs ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("timestamp", "event_time"),
    [
        ("2026-11-25T22:28:05.743181Z", "2026-11-25T22:28:05.743Z"),
        ("2026-11-25T22:28:05Z", "2026-11-25T22:28:05.000Z"),
        ("2026-11-25T23:28:05.5+01:00", "2026-11-25T22:28:05.500Z"),
        ("2026-11-25T22:28:05.123456", "2026-11-25T22:28:05.123Z"),
    ],
)
def test_event_time_is_utc_with_milliseconds(
    normalizer: AuditEventNormalizer, timestamp: str, event_time: str
) -> None:
    event = {**WATCH_PODS, "requestReceivedTimestamp": timestamp}

    assert record_of(normalizer, event)["eventTime"] == event_time


# Unicode digits (fullwidth, Arabic-Indic) pass str.isdigit but are no RFC 3339.
@pytest.mark.parametrize("fraction", [
    "74318x", "\uff17\uff14\uff13\uff11\uff18\uff11", "\u0667\u0664\u0663\u0661\u0668\u0661",
    "743 81", "+74318"])
def test_a_bad_fraction_is_refused_even_in_a_second_already_seen(fraction: str) -> None:
    # Seconds that parsed are remembered; the fraction must still be checked.
    assert parse_event_time("2026-11-25T22:28:05.743181Z", "t") == "2026-11-25T22:28:05.743Z"
    with pytest.raises(AuditEventError, match="not an RFC 3339 time"):
        parse_event_time(f"2026-11-25T22:28:05.{fraction}Z", "t")
    assert parse_event_time("2026-11-25T22:28:05.999999Z", "t") == "2026-11-25T22:28:05.999Z"


def test_event_time_falls_back_to_the_stage_timestamp(normalizer: AuditEventNormalizer) -> None:
    event = {key: value for key, value in WATCH_PODS.items() if key != "requestReceivedTimestamp"}

    assert record_of(normalizer, event)["eventTime"] == "2026-11-25T22:28:35.111Z"


def test_client_chosen_audit_id_gets_a_stable_uuid_event_id(
    normalizer: AuditEventNormalizer,
) -> None:
    # Clients may set the Audit-ID header; the API server uses it as is.
    event = {**WATCH_PODS, "auditID": "deploy-pipeline-42"}

    first = record_of(normalizer, event)
    again = record_of(AuditEventNormalizer(CLUSTER, REGION), event)

    assert uuid.UUID(first["eventID"])
    assert first["eventID"] == again["eventID"]
    assert first["requestID"] == "deploy-pipeline-42"


def test_upper_case_audit_id_is_lower_cased_for_the_event_id(
    normalizer: AuditEventNormalizer,
) -> None:
    audit_id = WATCH_PODS["auditID"].upper()

    record = record_of(normalizer, {**WATCH_PODS, "auditID": audit_id})

    assert record["eventID"] == WATCH_PODS["auditID"]
    assert record["requestID"] == audit_id


@pytest.mark.parametrize("audit_id", [
    "00000000-0000-0000-0000-00000000000g",  # a letter past f
    "00000000-0000-0000-0000-00000000000 ",  # a space for the last digit
    "000000 0-0000-0000-0000-000000000000",  # a space among the digits
    "00000000-0000-0000-0000-0000000000-0",  # a hyphen out of place
    "+0000000-0000-0000-0000-000000000000",
    "00000000-0000-0000-0000-0000000000\u0660\u0661",  # digits, but not ASCII ones
    "000000000000000000000000000000000000",
])
def test_audit_id_shaped_almost_like_a_uuid_gets_a_derived_event_id(
    normalizer: AuditEventNormalizer, audit_id: str,
) -> None:
    record = record_of(normalizer, {**WATCH_PODS, "auditID": audit_id})

    assert record["eventID"] != audit_id.lower()
    assert str(uuid.UUID(record["eventID"])) == record["eventID"]
    assert record["requestID"] == audit_id


# -- batches and bad input ---------------------------------------------------------------


def test_bad_item_is_rejected_and_good_items_are_kept(normalizer: AuditEventNormalizer) -> None:
    no_verb = {key: value for key, value in GET_SECRET.items() if key != "verb"}
    bad_groups = copy.deepcopy(LIST_CONFIGMAPS)
    bad_groups["user"]["groups"] = "system:masters"
    no_time = {
        key: value
        for key, value in WATCH_PODS.items()
        if key not in ("requestReceivedTimestamp", "stageTimestamp")
    }
    bad_time = {**GET_POD_LOG, "requestReceivedTimestamp": "yesterday"}
    no_id = {**EXEC_POD, "auditID": ""}

    records, rejections = normalizer.normalize_list(
        event_list(
            CREATE_DEPLOYMENT, no_verb, GET_SECRET, "junk", bad_groups, no_time, bad_time, no_id
        )
    )

    assert [record["eventName"] for record in records] == ["CreateDeployment", "GetSecret"]
    assert rejections == [
        AuditRejection(1, GET_SECRET["auditID"], "items[1].verb: missing"),
        AuditRejection(3, None, "items[3]: must be an object, got string"),
        AuditRejection(
            4,
            LIST_CONFIGMAPS["auditID"],
            "items[4].user.groups: must be a list of strings, got string",
        ),
        AuditRejection(
            5,
            WATCH_PODS["auditID"],
            "items[5].requestReceivedTimestamp: missing (and no stageTimestamp either)",
        ),
        AuditRejection(
            6,
            GET_POD_LOG["auditID"],
            "items[6].requestReceivedTimestamp: not an RFC 3339 time: 'yesterday'",
        ),
        AuditRejection(7, None, "items[7].auditID: missing"),
    ]


@pytest.mark.parametrize(
    ("field", "value", "reason"),
    [
        ("stage", None, "stage: missing"),
        ("verb", 7, "verb: must be a non-empty string, got int"),
        ("objectRef", "pods", "objectRef: must be an object, got string"),
        ("sourceIPs", "10.0.0.1", "sourceIPs: must be a list of strings, got string"),
        ("userAgent", ["kubectl"], "userAgent: must be a string, got list"),
        ("responseStatus", {"code": "403"}, "responseStatus.code: must be an integer, got string"),
        ("annotations", ["a"], "annotations: must be an object, got list"),
        (
            "user",
            {"username": "bob", "extra": {"k": "v"}},
            "user.extra.k: must be a string list, got string",
        ),
        (
            "impersonatedUser",
            {"username": 5},
            "impersonatedUser.username: must be a string, got int",
        ),
    ],
)
def test_wrong_types_are_refused_naming_the_field(
    normalizer: AuditEventNormalizer, field: str, value: object, reason: str
) -> None:
    event = {**WATCH_PODS, field: value}

    with pytest.raises(AuditEventError) as raised:
        normalizer.normalize(event)

    assert str(raised.value) == reason


@pytest.mark.parametrize(
    ("key", "value"),
    [("resource", ["pods"]), ("apiGroup", 3), ("subresource", {"x": 1}), ("name", 5)],
)
def test_wrong_types_in_the_object_ref_are_refused(
    normalizer: AuditEventNormalizer, key: str, value: object
) -> None:
    event = copy.deepcopy(WATCH_PODS)
    event["objectRef"][key] = value

    with pytest.raises(AuditEventError, match=rf"^objectRef\.{key}: must be a string"):
        normalizer.normalize(event)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ([], "expected an audit.k8s.io/v1 EventList object, got list"),
        (WATCH_PODS, "expected kind EventList and apiVersion audit.k8s.io/v1, got kind 'Event'"),
        (
            {"kind": "EventList", "apiVersion": "audit.k8s.io/v1beta1", "items": []},
            "--audit-webhook-version=audit.k8s.io/v1",
        ),
        (
            {"kind": "EventList", "apiVersion": "audit.k8s.io/v1", "items": {}},
            "items: must be a list, got object",
        ),
    ],
)
def test_body_that_is_not_an_event_list_is_refused(
    normalizer: AuditEventNormalizer, body: object, message: str
) -> None:
    with pytest.raises(AuditPayloadError, match=re.escape(message)):
        normalizer.normalize_list(body)


def test_event_list_without_items_gives_nothing(normalizer: AuditEventNormalizer) -> None:
    body = {"kind": "EventList", "apiVersion": "audit.k8s.io/v1", "metadata": {}}

    assert normalizer.normalize_list(body) == ([], [])


@settings(max_examples=400, deadline=None)
@given(data=st.data())
def test_any_damaged_event_is_normalized_or_rejected_never_raised(data: st.DataObject) -> None:
    normalizer = AuditEventNormalizer(CLUSTER, REGION)
    event = damaged_event(data)

    records, rejections = normalizer.normalize_list(event_list(event))

    assert len(records) + len(rejections) <= 1
    for record in records:
        assert_store_safe(record)
    for rejection in rejections:
        assert rejection.reason.startswith("items[0]")
