"""What to call a Kubernetes API request in a record: eventName, eventSource, category.

Kept apart from the normalizer because naming is a contract of its own: users
write selectors and saved queries against `eventName` (`CreateDeployment`,
`GetSecret`, `ExecPod`), so a name must be stable for a given request shape
and readable without knowing Kubernetes' URL layout. Everything here is a pure
function of (verb, API group, resource, subresource) or of a non-resource path,
so the normalizer computes it once per distinct request shape and caches it.

Naming rules (CloudTrail-like, verb first, singular Kind):
- resource requests: `<Verb><Kind>`, e.g. `ListConfigMap`, `DeleteCollectionPod`.
  The Kind comes from a table of well-known resources, else from a
  de-pluralized, word-segmented resource name (`certificaterequests` ->
  `CertificateRequest`), else the capitalized singular.
- subresources: `ExecPod`, `AttachPod`, `PortForwardPod` (no verb: the verb
  of a streaming request is only the HTTP transport, GET for websockets, POST
  for SPDY), `Proxy<Kind>` for any `*/proxy`, `<Verb><Kind>Log` for `pods/log`
  (`GetPodLog`), else `<Verb><Kind><Subresource>` (`UpdateDeploymentStatus`,
  `GetDeploymentScale`, `CreatePodEviction`).
- non-resource URLs: discovery documents by what they return
  (`GetAPIVersions` for `/api`, `GetAPIGroupList` for `/apis`, `GetAPIGroup`,
  `GetAPIResourceList`), a small table of the API server's own endpoints
  (`GetHealthz`, `GetVersion`, `GetOpenAPI`, `GetMetrics`, ...), and
  `<Verb>NonResourceURL` for anything else: the path is caller-chosen, so
  deriving names from it would let anyone mint new event names; the full
  path is in `additionalEventData.requestURI`.
"""

from __future__ import annotations

from http import HTTPStatus
from typing import Final, NamedTuple

from trail_operator.events.record import CATEGORY_DATA, CATEGORY_MANAGEMENT

CORE_EVENT_SOURCE: Final = "k8s.io"

READ_VERBS: Final = frozenset({"get", "list", "watch"})
# HTTP methods that non-resource requests are logged with and that only read.
_NON_RESOURCE_READ_VERBS: Final = frozenset({"get", "head", "options"})
# Streaming subresources: a shell or a tunnel into a pod is never read-only,
# whatever HTTP method carried it.
_STREAMING_SUBRESOURCES: Final = frozenset({"exec", "attach", "portforward"})
_POD_DATA_SUBRESOURCES: Final = frozenset({"exec", "attach", "portforward", "log"})
_DATA_RESOURCES: Final = frozenset({"secrets", "configmaps"})

_VERBS: Final[dict[str, str]] = {
    "get": "Get",
    "list": "List",
    "watch": "Watch",
    "create": "Create",
    "update": "Update",
    "patch": "Patch",
    "delete": "Delete",
    "deletecollection": "DeleteCollection",
    # Non-resource requests carry the lowercased HTTP method as their verb.
    "post": "Post",
    "put": "Put",
    "head": "Head",
    "options": "Options",
}

# Plural resource -> Kind for the built-in API groups and this project's own.
WELL_KNOWN_KINDS: Final[dict[str, str]] = {
    # core
    "bindings": "Binding",
    "componentstatuses": "ComponentStatus",
    "configmaps": "ConfigMap",
    "endpoints": "Endpoints",
    "events": "Event",
    "limitranges": "LimitRange",
    "namespaces": "Namespace",
    "nodes": "Node",
    "persistentvolumeclaims": "PersistentVolumeClaim",
    "persistentvolumes": "PersistentVolume",
    "pods": "Pod",
    "podtemplates": "PodTemplate",
    "replicationcontrollers": "ReplicationController",
    "resourcequotas": "ResourceQuota",
    "secrets": "Secret",
    "serviceaccounts": "ServiceAccount",
    "services": "Service",
    # apps, batch, autoscaling, policy
    "controllerrevisions": "ControllerRevision",
    "daemonsets": "DaemonSet",
    "deployments": "Deployment",
    "replicasets": "ReplicaSet",
    "statefulsets": "StatefulSet",
    "cronjobs": "CronJob",
    "jobs": "Job",
    "horizontalpodautoscalers": "HorizontalPodAutoscaler",
    "poddisruptionbudgets": "PodDisruptionBudget",
    "podsecuritypolicies": "PodSecurityPolicy",
    # networking, discovery
    "endpointslices": "EndpointSlice",
    "ingressclasses": "IngressClass",
    "ingresses": "Ingress",
    "ipaddresses": "IPAddress",
    "networkpolicies": "NetworkPolicy",
    "servicecidrs": "ServiceCIDR",
    # rbac, authentication, authorization, certificates
    "clusterrolebindings": "ClusterRoleBinding",
    "clusterroles": "ClusterRole",
    "rolebindings": "RoleBinding",
    "roles": "Role",
    "selfsubjectreviews": "SelfSubjectReview",
    "tokenreviews": "TokenReview",
    "localsubjectaccessreviews": "LocalSubjectAccessReview",
    "selfsubjectaccessreviews": "SelfSubjectAccessReview",
    "selfsubjectrulesreviews": "SelfSubjectRulesReview",
    "subjectaccessreviews": "SubjectAccessReview",
    "certificatesigningrequests": "CertificateSigningRequest",
    "clustertrustbundles": "ClusterTrustBundle",
    # storage, scheduling, node, coordination, flowcontrol, resource
    "csidrivers": "CSIDriver",
    "csinodes": "CSINode",
    "csistoragecapacities": "CSIStorageCapacity",
    "storageclasses": "StorageClass",
    "volumeattachments": "VolumeAttachment",
    "volumeattributesclasses": "VolumeAttributesClass",
    "priorityclasses": "PriorityClass",
    "runtimeclasses": "RuntimeClass",
    "leases": "Lease",
    "flowschemas": "FlowSchema",
    "prioritylevelconfigurations": "PriorityLevelConfiguration",
    "deviceclasses": "DeviceClass",
    "resourceclaims": "ResourceClaim",
    "resourceclaimtemplates": "ResourceClaimTemplate",
    "resourceslices": "ResourceSlice",
    # admission, extensions, aggregation
    "mutatingadmissionpolicies": "MutatingAdmissionPolicy",
    "mutatingadmissionpolicybindings": "MutatingAdmissionPolicyBinding",
    "mutatingwebhookconfigurations": "MutatingWebhookConfiguration",
    "validatingadmissionpolicies": "ValidatingAdmissionPolicy",
    "validatingadmissionpolicybindings": "ValidatingAdmissionPolicyBinding",
    "validatingwebhookconfigurations": "ValidatingWebhookConfiguration",
    "customresourcedefinitions": "CustomResourceDefinition",
    "apiservices": "APIService",
    "storageversions": "StorageVersion",
    "storageversionmigrations": "StorageVersionMigration",
    # audit.trail-operator.dev
    "eventdatastores": "EventDataStore",
    "integrations": "Integration",
    "trails": "Trail",
}

_SUBRESOURCES: Final[dict[str, str]] = {
    "approval": "Approval",
    "attach": "Attach",
    "binding": "Binding",
    "ephemeralcontainers": "EphemeralContainers",
    "eviction": "Eviction",
    "exec": "Exec",
    "finalize": "Finalize",
    "log": "Log",
    "portforward": "PortForward",
    "proxy": "Proxy",
    "resize": "Resize",
    "rollback": "Rollback",
    "scale": "Scale",
    "status": "Status",
    "token": "Token",
}

# Words that custom resource names are commonly built from, so that
# `servicemonitors` reads `ServiceMonitor` rather than `Servicemonitor`.
# Segmentation is best effort: a name it cannot cover entirely is capitalized.
_WORD_LIST: Final = """
    access account address admission advertisement agent alert alertmanager analysis
    app application approval attachment attributes authentication authorization
    autoscaler backup bgp binding bucket budget bundle ca canary capacity certificate
    challenge channel chart claim class cluster collector component config
    configuration connection container content controller cron data database
    daemon decision definition deployment destination device disruption driver
    endpoint entry envoy event experiment external filter flow gateway git grant
    grpc helm horizontal http image import ingress instance integration ip issuer
    job key kustomization lease level limit listener local log machine manager map
    mesh metric mirror monitor mutating namespace network node object order peer
    pipeline placement plugin pod policy pool priority probe profile project
    prometheus provider proxy quota range receiver reference release replica
    replication report repository request resource restore review revision role
    rollout route rule run runtime scaled schedule schema scrape sealed secret
    self service set sidecar slice snapshot source space stateful status storage
    store subject tcp telemetry template tenant tls token topology trace trail
    trigger trust udp user value vertical virtual volume wasm webhook workflow
"""
_WORDS: Final = frozenset(_WORD_LIST.split())
_LONGEST_WORD: Final = max(map(len, _WORDS))

# Longest resource and group names Kubernetes accepts (a DNS-1035 label, a DNS
# subdomain). Requests for resources that do not exist are audited too, with
# whatever the caller put in the URL: longer names are not real resources and
# are not worth naming (or segmenting) one by one.
MAX_RESOURCE_LENGTH: Final = 63
MAX_GROUP_LENGTH: Final = 253


class Route(NamedTuple):
    """Everything about a record that depends only on the request's shape."""

    event_name: str
    event_source: str
    category: str
    read_only: bool
    # `resources[].type`: the plural resource, with `/subresource` if any.
    resource_type: str


def verb_name(verb: str) -> str:
    """`deletecollection` -> `DeleteCollection`; unknown verbs are capitalized."""
    return _VERBS.get(verb) or verb[:1].upper() + verb[1:]


def event_source(api_group: str) -> str:
    """`k8s.io` for the core group, `<group>.k8s.io` for built-in short groups
    (`apps.k8s.io`), and a dotted group as it is (`rbac.authorization.k8s.io`)."""
    if not api_group:
        return CORE_EVENT_SOURCE
    api_group = api_group[:MAX_GROUP_LENGTH]
    if "." in api_group:
        return api_group
    return f"{api_group}.{CORE_EVENT_SOURCE}"


def singularize(plural: str) -> str:
    """A sane English de-pluralizer for resource names without a table entry."""
    if plural.endswith("ies") and len(plural) > 3:
        return plural[:-3] + "y"
    if plural.endswith(("sses", "shes", "ches", "xes", "zzes", "uses")):
        return plural[:-2]
    if plural.endswith("s") and not plural.endswith("ss"):
        return plural[:-1]
    return plural


def camel_case(name: str) -> str:
    """`certificaterequest` -> `CertificateRequest`, via the word list; separators
    (`-`, `_`, `.`) split words too; unknown words are only capitalized."""
    parts = name.replace("-", " ").replace("_", " ").replace(".", " ").split()
    return "".join(_segment(part) for part in parts)


def _segment(word: str) -> str:
    # Fewest-words cover of `word` by _WORDS (dynamic programming over prefixes).
    n = len(word)
    best: list[list[str] | None] = [None] * (n + 1)
    best[0] = []
    for end in range(1, n + 1):
        for start in range(max(0, end - _LONGEST_WORD), end):
            head = best[start]
            piece = word[start:end]
            if head is not None and piece in _WORDS:
                candidate = [*head, piece]
                current = best[end]
                if current is None or len(candidate) < len(current):
                    best[end] = candidate
    cover = best[n]
    if not cover:
        return word[:1].upper() + word[1:]
    return "".join(piece[:1].upper() + piece[1:] for piece in cover)


def kind_for_resource(resource: str) -> str:
    """The Kind a plural resource name most likely stands for."""
    known = WELL_KNOWN_KINDS.get(resource)
    if known is not None:
        return known
    if len(resource) > MAX_RESOURCE_LENGTH:
        return "InvalidResource"
    return camel_case(singularize(resource))


def subresource_name(subresource: str) -> str:
    known = _SUBRESOURCES.get(subresource)
    if known is not None:
        return known
    if len(subresource) > MAX_RESOURCE_LENGTH:
        return "InvalidSubresource"
    return camel_case(subresource)


def resource_route(verb: str, api_group: str, resource: str, subresource: str) -> Route:
    """Name, source, category and read-only flag of a resource request."""
    kind = kind_for_resource(resource)
    if subresource in _STREAMING_SUBRESOURCES or subresource == "proxy":
        name = subresource_name(subresource) + kind
    elif subresource:
        name = verb_name(verb) + kind + subresource_name(subresource)
    else:
        name = verb_name(verb) + kind
    core = not api_group
    is_data = (
        (core and not subresource and resource in _DATA_RESOURCES and verb in READ_VERBS)
        or (core and resource == "pods" and subresource in _POD_DATA_SUBRESOURCES)
        or subresource == "proxy"
    )
    return Route(
        event_name=name,
        event_source=event_source(api_group),
        category=CATEGORY_DATA if is_data else CATEGORY_MANAGEMENT,
        read_only=verb in READ_VERBS and subresource not in _STREAMING_SUBRESOURCES,
        resource_type=f"{resource}/{subresource}" if subresource else resource,
    )


# First path segment of the API server's own non-resource endpoints.
_NON_RESOURCE_ENDPOINTS: Final[dict[str, str]] = {
    "healthz": "Healthz",
    "livez": "Livez",
    "readyz": "Readyz",
    "version": "Version",
    "metrics": "Metrics",
    "openapi": "OpenAPI",
    "openid": "OpenIDKeySet",
    ".well-known": "OpenIDConfiguration",
    "logs": "Logs",
    "debug": "Debug",
    "flowcontrol": "FlowControl",
}


def non_resource_route(verb: str, path: str) -> Route:
    """Name of a request to a URL that is not an API resource (`path` has no query)."""
    segments = [segment for segment in path.split("/") if segment]
    what: str | None
    if not segments:
        what = "Root"
    elif segments[0] == "api":
        what = "APIVersions" if len(segments) == 1 else "APIResourceList"
    elif segments[0] == "apis":
        what = ("APIGroupList", "APIGroup", "APIResourceList")[min(len(segments), 3) - 1]
    else:
        what = _NON_RESOURCE_ENDPOINTS.get(segments[0])
    return Route(
        event_name=verb_name(verb) + (what or "NonResourceURL"),
        event_source=CORE_EVENT_SOURCE,
        category=CATEGORY_MANAGEMENT,
        read_only=verb in _NON_RESOURCE_READ_VERBS,
        resource_type="",
    )


class ResourcePath(NamedTuple):
    api_group: str
    resource: str
    subresource: str
    namespace: str
    name: str


def parse_resource_path(path: str) -> ResourcePath | None:
    """The resource a `/api/...` or `/apis/...` URL addresses, as the API server
    parses it; None for discovery and non-resource URLs. Used when an audit
    event has no objectRef (some senders omit it)."""
    segments = [segment for segment in path.split("/") if segment]
    if len(segments) >= 3 and segments[0] == "api":
        group, rest = "", segments[2:]
    elif len(segments) >= 4 and segments[0] == "apis":
        group, rest = segments[1], segments[3:]
    else:
        return None
    if rest[0] == "watch":
        rest = rest[1:]
    namespace = ""
    # `/namespaces/<ns>/<resource>...` addresses a namespaced resource;
    # `/namespaces/<ns>` and `/namespaces/<ns>/status|finalize` the Namespace.
    if len(rest) >= 3 and rest[0] == "namespaces" and rest[2] not in ("status", "finalize"):
        namespace, rest = rest[1], rest[2:]
    if not rest:
        return None
    resource = rest[0]
    name = rest[1] if len(rest) > 1 else ""
    subresource = rest[2] if len(rest) > 2 else ""
    if resource == "namespaces" and name:
        namespace = name
    return ResourcePath(group, resource, subresource, namespace, name)


def _http_reason(status: HTTPStatus) -> str:
    words = status.phrase.replace("-", " ").split()
    return "".join("".join(ch for ch in word.capitalize() if ch.isalnum()) for word in words)


# `404` -> `NotFound`: the errorCode of a failed request whose Status has no reason.
HTTP_ERROR_CODES: Final[dict[int, str]] = {
    status.value: _http_reason(status) for status in HTTPStatus if status.value >= 400
}


def http_error_code(code: int) -> str:
    return HTTP_ERROR_CODES.get(code) or f"Http{code}"
