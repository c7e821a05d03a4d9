"""Realistic kube-apiserver audit events (`audit.k8s.io/v1`), for tests and benchmarks.

Most were captured from a kube-apiserver v1.32 driven by kubectl, with a
RequestResponse-everything policy so that the bodies a careless policy would
log (Secret values, bearer tokens) are really there; `managedFields` and
table column descriptions were trimmed, source IPs and the token shortened.
The ones marked hand-written follow the same shapes for cases a bare API
server cannot produce (a kubelet, a pod's service account, a port-forward).

The constants are shared: tests that change an event copy it first;
`sample_events()` returns fresh copies.
"""

from __future__ import annotations

import copy
from typing import Any, Final

from hypothesis import strategies as st

# A service account token (shortened): what TokenRequest answers and TokenReview asks about.
BEARER_TOKEN: Final = (
    "eyJhbGciOiJSUzI1NiIsImtpZCI6IlI3T3VlZ3hy.eyJhdWQiOlsiaHR0cHM6Ly9rdWJl.VyN6ASmaFjjYMnN0RW0M"
)
# kubectl apply's annotation on the Secret it applied: the Secret again, values included.
LAST_APPLIED_SECRET: Final = (
    '{"apiVersion":"v1","kind":"Secret","metadata":{"annotations":{},"name":"applied",'
    '"namespace":"default"},"stringData":{"token":"s3cr3t"}}\n'
)

# kubectl create deployment web --image=nginx:1.27 --replicas=2 (RequestResponse).
CREATE_DEPLOYMENT: Final[dict[str, Any]] = {
    "kind": "Event",
    "apiVersion": "audit.k8s.io/v1",
    "level": "RequestResponse",
    "auditID": "a012009e-1cf0-4b96-bcc1-8f9350f2502b",
    "stage": "ResponseComplete",
    "requestURI": (
        "/apis/apps/v1/namespaces/default/deployments"
        "?fieldManager=kubectl-create&fieldValidation=Strict"
    ),
    "verb": "create",
    "user": {
        "username": "admin",
        "uid": "admin-uid",
        "groups": ["system:masters", "system:authenticated"],
    },
    "sourceIPs": ["203.0.113.10"],
    "userAgent": "kubectl/v1.32.4 (linux/amd64) kubernetes/4cb5f07",
    "objectRef": {
        "resource": "deployments",
        "namespace": "default",
        "name": "web",
        "apiGroup": "apps",
        "apiVersion": "v1",
    },
    "responseStatus": {"metadata": {}, "code": 201},
    "requestObject": {
        "kind": "Deployment",
        "apiVersion": "apps/v1",
        "metadata": {"name": "web", "creationTimestamp": None, "labels": {"app": "web"}},
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {
                "metadata": {"creationTimestamp": None, "labels": {"app": "web"}},
                "spec": {
                    "containers": [
                        {
                            "name": "nginx",
                            "image": "nginx:1.27",
                            "resources": {},
                            "terminationMessagePath": "/dev/termination-log",
                            "terminationMessagePolicy": "File",
                            "imagePullPolicy": "IfNotPresent",
                        }
                    ],
                    "restartPolicy": "Always",
                    "terminationGracePeriodSeconds": 30,
                    "dnsPolicy": "ClusterFirst",
                    "securityContext": {},
                    "schedulerName": "default-scheduler",
                },
            },
            "strategy": {
                "type": "RollingUpdate",
                "rollingUpdate": {"maxUnavailable": "25%", "maxSurge": "25%"},
            },
            "revisionHistoryLimit": 10,
            "progressDeadlineSeconds": 600,
        },
        "status": {},
    },
    "responseObject": {
        "kind": "Deployment",
        "apiVersion": "apps/v1",
        "metadata": {
            "name": "web",
            "namespace": "default",
            "uid": "b20807c2-5785-4f63-825e-154684f14844",
            "resourceVersion": "229",
            "generation": 1,
            "creationTimestamp": "2026-11-25T22:28:05Z",
            "labels": {"app": "web"},
        },
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {
                "metadata": {"creationTimestamp": None, "labels": {"app": "web"}},
                "spec": {
                    "containers": [
                        {
                            "name": "nginx",
                            "image": "nginx:1.27",
                            "resources": {},
                            "terminationMessagePath": "/dev/termination-log",
                            "terminationMessagePolicy": "File",
                            "imagePullPolicy": "IfNotPresent",
                        }
                    ],
                    "restartPolicy": "Always",
                    "terminationGracePeriodSeconds": 30,
                    "dnsPolicy": "ClusterFirst",
                    "securityContext": {},
                    "schedulerName": "default-scheduler",
                },
            },
            "strategy": {
                "type": "RollingUpdate",
                "rollingUpdate": {"maxUnavailable": "25%", "maxSurge": "25%"},
            },
            "revisionHistoryLimit": 10,
            "progressDeadlineSeconds": 600,
        },
        "status": {},
    },
    "requestReceivedTimestamp": "2026-11-25T22:28:05.743181Z",
    "stageTimestamp": "2026-11-25T22:28:05.753551Z",
    "annotations": {"authorization.k8s.io/decision": "allow", "authorization.k8s.io/reason": ""},
}

# kubectl get secret db -o yaml (RequestResponse: the Secret's values are in the event).
GET_SECRET: Final[dict[str, Any]] = {
    "kind": "Event",
    "apiVersion": "audit.k8s.io/v1",
    "level": "RequestResponse",
    "auditID": "0f8bd5c9-a9e9-4cc1-9768-81e1efcbe6fe",
    "stage": "ResponseComplete",
    "requestURI": "/api/v1/namespaces/default/secrets/db",
    "verb": "get",
    "user": {
        "username": "admin",
        "uid": "admin-uid",
        "groups": ["system:masters", "system:authenticated"],
    },
    "sourceIPs": ["203.0.113.10"],
    "userAgent": "kubectl/v1.32.4 (linux/amd64) kubernetes/4cb5f07",
    "objectRef": {"resource": "secrets", "namespace": "default", "name": "db", "apiVersion": "v1"},
    "responseStatus": {"metadata": {}, "code": 200},
    "responseObject": {
        "kind": "Secret",
        "apiVersion": "v1",
        "metadata": {
            "name": "db",
            "namespace": "default",
            "uid": "c0d183de-e676-41cf-b3b3-e2192f8c4d3d",
            "resourceVersion": "230",
            "creationTimestamp": "2026-11-25T22:28:05Z",
        },
        "data": {"password": "aHVudGVyMg==", "user": "cm9vdA=="},
        "type": "Opaque",
    },
    "requestReceivedTimestamp": "2026-11-25T22:28:06.280136Z",
    "stageTimestamp": "2026-11-25T22:28:06.281830Z",
    "annotations": {"authorization.k8s.io/decision": "allow", "authorization.k8s.io/reason": ""},
}

# kubectl get configmaps -A (Metadata, as the shipped policy logs it).
LIST_CONFIGMAPS: Final[dict[str, Any]] = {
    "kind": "Event",
    "apiVersion": "audit.k8s.io/v1",
    "level": "Metadata",
    "auditID": "ea77a7db-d5c7-4c10-8f74-34d4e67ddb0a",
    "stage": "ResponseComplete",
    "requestURI": "/api/v1/configmaps?limit=500",
    "verb": "list",
    "user": {
        "username": "admin",
        "uid": "admin-uid",
        "groups": ["system:masters", "system:authenticated"],
    },
    "sourceIPs": ["203.0.113.10"],
    "userAgent": "kubectl/v1.32.4 (linux/amd64) kubernetes/4cb5f07",
    "objectRef": {"resource": "configmaps", "apiVersion": "v1"},
    "responseStatus": {"metadata": {}, "code": 200},
    "requestReceivedTimestamp": "2026-11-25T22:28:06.517904Z",
    "stageTimestamp": "2026-11-25T22:28:06.521525Z",
    "annotations": {"authorization.k8s.io/decision": "allow", "authorization.k8s.io/reason": ""},
}

# kubectl get pods -w, final stage (the watch ended two seconds later).
WATCH_PODS: Final[dict[str, Any]] = {
    "kind": "Event",
    "apiVersion": "audit.k8s.io/v1",
    "level": "Metadata",
    "auditID": "1f1a3a72-8f31-4ab2-a9a6-b6e85f55e84a",
    "stage": "ResponseComplete",
    "requestURI": "/api/v1/namespaces/default/pods?resourceVersion=249&watch=true",
    "verb": "watch",
    "user": {
        "username": "admin",
        "uid": "admin-uid",
        "groups": ["system:masters", "system:authenticated"],
    },
    "sourceIPs": ["203.0.113.10"],
    "userAgent": "kubectl/v1.32.4 (linux/amd64) kubernetes/4cb5f07",
    "objectRef": {"resource": "pods", "namespace": "default", "apiVersion": "v1"},
    "responseStatus": {"metadata": {}, "code": 200},
    "requestReceivedTimestamp": "2026-11-25T22:28:33.188980Z",
    "stageTimestamp": "2026-11-25T22:28:35.111919Z",
    "annotations": {"authorization.k8s.io/decision": "allow", "authorization.k8s.io/reason": ""},
}

# kubectl patch deployment web -p '{"spec":{"replicas":3}}' (Request).
PATCH_DEPLOYMENT: Final[dict[str, Any]] = {
    "kind": "Event",
    "apiVersion": "audit.k8s.io/v1",
    "level": "Request",
    "auditID": "7b18908a-c8c6-4744-9117-46a0925b27f8",
    "stage": "ResponseComplete",
    "requestURI": "/apis/apps/v1/namespaces/default/deployments/web?fieldManager=kubectl-patch",
    "verb": "patch",
    "user": {
        "username": "admin",
        "uid": "admin-uid",
        "groups": ["system:masters", "system:authenticated"],
    },
    "sourceIPs": ["203.0.113.10"],
    "userAgent": "kubectl/v1.32.4 (linux/amd64) kubernetes/4cb5f07",
    "objectRef": {
        "resource": "deployments",
        "namespace": "default",
        "name": "web",
        "apiGroup": "apps",
        "apiVersion": "v1",
    },
    "responseStatus": {"metadata": {}, "code": 200},
    "requestObject": {"spec": {"replicas": 3}},
    "requestReceivedTimestamp": "2026-11-25T22:28:06.646439Z",
    "stageTimestamp": "2026-11-25T22:28:06.658153Z",
    "annotations": {"authorization.k8s.io/decision": "allow", "authorization.k8s.io/reason": ""},
}

# kubectl scale deployment web --replicas=1: a patch of the scale subresource.
PATCH_DEPLOYMENT_SCALE: Final[dict[str, Any]] = {
    "kind": "Event",
    "apiVersion": "audit.k8s.io/v1",
    "level": "RequestResponse",
    "auditID": "782ad173-a61d-41eb-a56f-d49cc60e964b",
    "stage": "ResponseComplete",
    "requestURI": "/apis/apps/v1/namespaces/default/deployments/web/scale",
    "verb": "patch",
    "user": {
        "username": "admin",
        "uid": "admin-uid",
        "groups": ["system:masters", "system:authenticated"],
    },
    "sourceIPs": ["203.0.113.10"],
    "userAgent": "kubectl/v1.32.4 (linux/amd64) kubernetes/4cb5f07",
    "objectRef": {
        "resource": "deployments",
        "namespace": "default",
        "name": "web",
        "apiGroup": "apps",
        "apiVersion": "v1",
        "subresource": "scale",
    },
    "responseStatus": {"metadata": {}, "code": 200},
    "requestObject": {"spec": {"replicas": 1}},
    "responseObject": {
        "kind": "Scale",
        "apiVersion": "autoscaling/v1",
        "metadata": {
            "name": "web",
            "namespace": "default",
            "uid": "b20807c2-5785-4f63-825e-154684f14844",
            "resourceVersion": "238",
            "creationTimestamp": "2026-11-25T22:28:05Z",
        },
        "spec": {"replicas": 1},
        "status": {"replicas": 0, "selector": "app=web"},
    },
    "requestReceivedTimestamp": "2026-11-25T22:28:06.966756Z",
    "stageTimestamp": "2026-11-25T22:28:06.972526Z",
    "annotations": {"authorization.k8s.io/decision": "allow", "authorization.k8s.io/reason": ""},
}

# kubectl patch secret db -p '{"data":{...}}': a patch body has no kind.
MERGE_PATCH_SECRET: Final[dict[str, Any]] = {
    "kind": "Event",
    "apiVersion": "audit.k8s.io/v1",
    "level": "RequestResponse",
    "auditID": "bfb1f48b-6bce-4dc8-8cf0-99f2af83dd02",
    "stage": "ResponseComplete",
    "requestURI": "/api/v1/namespaces/default/secrets/db?fieldManager=kubectl-patch",
    "verb": "patch",
    "user": {
        "username": "admin",
        "uid": "admin-uid",
        "groups": ["system:masters", "system:authenticated"],
    },
    "sourceIPs": ["203.0.113.10"],
    "userAgent": "kubectl/v1.32.4 (linux/amd64) kubernetes/4cb5f07",
    "objectRef": {"resource": "secrets", "namespace": "default", "name": "db", "apiVersion": "v1"},
    "responseStatus": {"metadata": {}, "code": 200},
    "requestObject": {"data": {"password": "bmV3cGFzcw=="}},
    "responseObject": {
        "kind": "Secret",
        "apiVersion": "v1",
        "metadata": {
            "name": "db",
            "namespace": "default",
            "uid": "c0d183de-e676-41cf-b3b3-e2192f8c4d3d",
            "resourceVersion": "236",
            "creationTimestamp": "2026-11-25T22:28:05Z",
        },
        "data": {"password": "bmV3cGFzcw==", "user": "cm9vdA=="},
        "type": "Opaque",
    },
    "requestReceivedTimestamp": "2026-11-25T22:28:06.774544Z",
    "stageTimestamp": "2026-11-25T22:28:06.779158Z",
    "annotations": {"authorization.k8s.io/decision": "allow", "authorization.k8s.io/reason": ""},
}

# kubectl patch secret db --type=json: an RFC 6902 JSON patch (a list).
JSON_PATCH_SECRET: Final[dict[str, Any]] = {
    "kind": "Event",
    "apiVersion": "audit.k8s.io/v1",
    "level": "RequestResponse",
    "auditID": "40659a22-c25f-4055-827d-3fea9ca51b8a",
    "stage": "ResponseComplete",
    "requestURI": "/api/v1/namespaces/default/secrets/db?fieldManager=kubectl-patch",
    "verb": "patch",
    "user": {
        "username": "admin",
        "uid": "admin-uid",
        "groups": ["system:masters", "system:authenticated"],
    },
    "sourceIPs": ["203.0.113.10"],
    "userAgent": "kubectl/v1.32.4 (linux/amd64) kubernetes/4cb5f07",
    "objectRef": {"resource": "secrets", "namespace": "default", "name": "db", "apiVersion": "v1"},
    "responseStatus": {"metadata": {}, "code": 200},
    "requestObject": [{"op": "replace", "path": "/data/user", "value": "YWRtaW4="}],
    "responseObject": {
        "kind": "Secret",
        "apiVersion": "v1",
        "metadata": {
            "name": "db",
            "namespace": "default",
            "uid": "c0d183de-e676-41cf-b3b3-e2192f8c4d3d",
            "resourceVersion": "237",
            "creationTimestamp": "2026-11-25T22:28:05Z",
        },
        "data": {"password": "bmV3cGFzcw==", "user": "YWRtaW4="},
        "type": "Opaque",
    },
    "requestReceivedTimestamp": "2026-11-25T22:28:06.878351Z",
    "stageTimestamp": "2026-11-25T22:28:06.882964Z",
    "annotations": {"authorization.k8s.io/decision": "allow", "authorization.k8s.io/reason": ""},
}

# kubectl apply of a Secret: the last-applied annotation repeats its values.
APPLY_SECRET: Final[dict[str, Any]] = {
    "kind": "Event",
    "apiVersion": "audit.k8s.io/v1",
    "level": "RequestResponse",
    "auditID": "de363ffb-0384-46e7-b05d-3ed5ffd9875f",
    "stage": "ResponseComplete",
    "requestURI": (
        "/api/v1/namespaces/default/secrets"
        "?fieldManager=kubectl-client-side-apply&fieldValidation=Strict"
    ),
    "verb": "create",
    "user": {
        "username": "admin",
        "uid": "admin-uid",
        "groups": ["system:masters", "system:authenticated"],
    },
    "sourceIPs": ["203.0.113.10"],
    "userAgent": "kubectl/v1.32.4 (linux/amd64) kubernetes/4cb5f07",
    "objectRef": {
        "resource": "secrets",
        "namespace": "default",
        "name": "applied",
        "apiVersion": "v1",
    },
    "responseStatus": {"metadata": {}, "code": 201},
    "requestObject": {
        "kind": "Secret",
        "apiVersion": "v1",
        "metadata": {
            "name": "applied",
            "namespace": "default",
            "creationTimestamp": None,
            "annotations": {
                "kubectl.kubernetes.io/last-applied-configuration": LAST_APPLIED_SECRET
            },
        },
        "data": {"token": "czNjcjN0"},
        "type": "Opaque",
    },
    "responseObject": {
        "kind": "Secret",
        "apiVersion": "v1",
        "metadata": {
            "name": "applied",
            "namespace": "default",
            "uid": "b3acf917-e46a-4dd3-acee-716edeff3549",
            "resourceVersion": "231",
            "creationTimestamp": "2026-11-25T22:28:06Z",
            "annotations": {
                "kubectl.kubernetes.io/last-applied-configuration": LAST_APPLIED_SECRET
            },
        },
        "data": {"token": "czNjcjN0"},
        "type": "Opaque",
    },
    "requestReceivedTimestamp": "2026-11-25T22:28:06.126598Z",
    "stageTimestamp": "2026-11-25T22:28:06.141294Z",
    "annotations": {"authorization.k8s.io/decision": "allow", "authorization.k8s.io/reason": ""},
}

# kubectl get secrets: a Table whose rows carry the last-applied annotation.
LIST_SECRETS_TABLE: Final[dict[str, Any]] = {
    "kind": "Event",
    "apiVersion": "audit.k8s.io/v1",
    "level": "RequestResponse",
    "auditID": "3f1b7667-226f-40ab-a325-94c1f314a8c4",
    "stage": "ResponseComplete",
    "requestURI": "/api/v1/namespaces/default/secrets?limit=500",
    "verb": "list",
    "user": {
        "username": "admin",
        "uid": "admin-uid",
        "groups": ["system:masters", "system:authenticated"],
    },
    "sourceIPs": ["203.0.113.10"],
    "userAgent": "kubectl/v1.32.4 (linux/amd64) kubernetes/4cb5f07",
    "objectRef": {"resource": "secrets", "namespace": "default", "apiVersion": "v1"},
    "responseStatus": {"metadata": {}, "code": 200},
    "responseObject": {
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": {"resourceVersion": "234"},
        "rows": [
            {
                "cells": ["applied", "Opaque", 1, "0s"],
                "object": {
                    "kind": "PartialObjectMetadata",
                    "apiVersion": "meta.k8s.io/v1",
                    "metadata": {
                        "name": "applied",
                        "namespace": "default",
                        "uid": "b3acf917-e46a-4dd3-acee-716edeff3549",
                        "resourceVersion": "231",
                        "creationTimestamp": "2026-11-25T22:28:06Z",
                        "annotations": {
                            "kubectl.kubernetes.io/last-applied-configuration": LAST_APPLIED_SECRET
                        },
                    },
                },
            },
            {
                "cells": ["db", "Opaque", 2, "1s"],
                "object": {
                    "kind": "PartialObjectMetadata",
                    "apiVersion": "meta.k8s.io/v1",
                    "metadata": {
                        "name": "db",
                        "namespace": "default",
                        "uid": "c0d183de-e676-41cf-b3b3-e2192f8c4d3d",
                        "resourceVersion": "230",
                        "creationTimestamp": "2026-11-25T22:28:05Z",
                    },
                },
            },
        ],
    },
    "requestReceivedTimestamp": "2026-11-25T22:28:06.385805Z",
    "stageTimestamp": "2026-11-25T22:28:06.388553Z",
    "annotations": {"authorization.k8s.io/decision": "allow", "authorization.k8s.io/reason": ""},
}

# kubectl delete deployment web (Request; the Status names the uid).
DELETE_DEPLOYMENT: Final[dict[str, Any]] = {
    "kind": "Event",
    "apiVersion": "audit.k8s.io/v1",
    "level": "Request",
    "auditID": "f556e2ef-a861-4586-ac70-35731ab2aa04",
    "stage": "ResponseComplete",
    "requestURI": "/apis/apps/v1/namespaces/default/deployments/web",
    "verb": "delete",
    "user": {
        "username": "admin",
        "uid": "admin-uid",
        "groups": ["system:masters", "system:authenticated"],
    },
    "sourceIPs": ["203.0.113.10"],
    "userAgent": "kubectl/v1.32.4 (linux/amd64) kubernetes/4cb5f07",
    "objectRef": {
        "resource": "deployments",
        "namespace": "default",
        "name": "web",
        "apiGroup": "apps",
        "apiVersion": "v1",
    },
    "responseStatus": {
        "metadata": {},
        "status": "Success",
        "details": {
            "name": "web",
            "group": "apps",
            "kind": "deployments",
            "uid": "b20807c2-5785-4f63-825e-154684f14844",
        },
        "code": 200,
    },
    "requestObject": {
        "kind": "DeleteOptions",
        "apiVersion": "meta.k8s.io/__internal",
        "propagationPolicy": "Background",
    },
    "requestReceivedTimestamp": "2026-11-25T22:28:08.892271Z",
    "stageTimestamp": "2026-11-25T22:28:08.898854Z",
    "annotations": {"authorization.k8s.io/decision": "allow", "authorization.k8s.io/reason": ""},
}

# kubectl delete jobs -l pipeline=nightly via deletecollection (hand-written).
DELETE_COLLECTION_JOBS: Final[dict[str, Any]] = {
    "kind": "Event",
    "apiVersion": "audit.k8s.io/v1",
    "level": "Request",
    "auditID": "8a7b6c5d-4e3f-4a2b-9c1d-0e9f8a7b6c5d",
    "stage": "ResponseComplete",
    "requestURI": "/apis/batch/v1/namespaces/ci/jobs?labelSelector=pipeline%3Dnightly",
    "verb": "deletecollection",
    "user": {"username": "alice", "uid": "alice-uid", "groups": ["dev", "system:authenticated"]},
    "sourceIPs": ["198.51.100.23"],
    "userAgent": "kubectl/v1.32.4 (linux/amd64) kubernetes/4cb5f07",
    "objectRef": {"resource": "jobs", "namespace": "ci", "apiGroup": "batch", "apiVersion": "v1"},
    "responseStatus": {"metadata": {}, "code": 200},
    "requestObject": {
        "kind": "DeleteOptions",
        "apiVersion": "meta.k8s.io/__internal",
        "propagationPolicy": "Background",
    },
    "requestReceivedTimestamp": "2026-11-25T22:28:11.402518Z",
    "stageTimestamp": "2026-11-25T22:28:11.431077Z",
    "annotations": {
        "authorization.k8s.io/decision": "allow",
        "authorization.k8s.io/reason": "RBAC: allowed by RoleBinding "
        '"ci-admins/ci" of ClusterRole "admin" '
        'to Group "dev"',
    },
}

# kubectl exec shell -- ls over SPDY (101 Switching Protocols).
EXEC_POD: Final[dict[str, Any]] = {
    "kind": "Event",
    "apiVersion": "audit.k8s.io/v1",
    "level": "Metadata",
    "auditID": "5209b142-4bf6-4db7-9aa7-9c957690dbba",
    "stage": "ResponseComplete",
    "requestURI": (
        "/api/v1/namespaces/default/pods/shell/exec"
        "?command=ls&container=shell&stderr=true&stdout=true"
    ),
    "verb": "create",
    "user": {
        "username": "admin",
        "uid": "admin-uid",
        "groups": ["system:masters", "system:authenticated"],
    },
    "sourceIPs": ["203.0.113.10"],
    "userAgent": "kubectl/v1.32.4 (linux/amd64) kubernetes/4cb5f07",
    "objectRef": {
        "resource": "pods",
        "namespace": "default",
        "name": "shell",
        "apiVersion": "v1",
        "subresource": "exec",
    },
    "responseStatus": {"metadata": {}, "code": 101},
    "requestReceivedTimestamp": "2026-11-25T22:28:07.194714Z",
    "stageTimestamp": "2026-11-25T22:28:07.196238Z",
    "annotations": {"authorization.k8s.io/decision": "allow", "authorization.k8s.io/reason": ""},
}

# kubectl port-forward pod/shell (hand-written from the exec event's shape).
PORT_FORWARD_POD: Final[dict[str, Any]] = {
    "kind": "Event",
    "apiVersion": "audit.k8s.io/v1",
    "level": "Metadata",
    "auditID": "5f0c3c1e-7f3e-4d7a-9a58-0e7f2f4b9c11",
    "stage": "ResponseComplete",
    "requestURI": "/api/v1/namespaces/default/pods/shell/portforward",
    "verb": "create",
    "user": {
        "username": "admin",
        "uid": "admin-uid",
        "groups": ["system:masters", "system:authenticated"],
    },
    "sourceIPs": ["203.0.113.10"],
    "userAgent": "kubectl/v1.32.4 (linux/amd64) kubernetes/4cb5f07",
    "objectRef": {
        "resource": "pods",
        "namespace": "default",
        "name": "shell",
        "apiVersion": "v1",
        "subresource": "portforward",
    },
    "responseStatus": {"metadata": {}, "code": 101},
    "requestReceivedTimestamp": "2026-11-25T22:28:12.004211Z",
    "stageTimestamp": "2026-11-25T22:29:40.118532Z",
    "annotations": {"authorization.k8s.io/decision": "allow", "authorization.k8s.io/reason": ""},
}

# kubectl logs shell.
GET_POD_LOG: Final[dict[str, Any]] = {
    "kind": "Event",
    "apiVersion": "audit.k8s.io/v1",
    "level": "Metadata",
    "auditID": "7da72688-4bea-4691-9f64-86d1cbf3fb46",
    "stage": "ResponseComplete",
    "requestURI": "/api/v1/namespaces/default/pods/shell/log?container=shell",
    "verb": "get",
    "user": {
        "username": "admin",
        "uid": "admin-uid",
        "groups": ["system:masters", "system:authenticated"],
    },
    "sourceIPs": ["203.0.113.10"],
    "userAgent": "kubectl/v1.32.4 (linux/amd64) kubernetes/4cb5f07",
    "objectRef": {
        "resource": "pods",
        "namespace": "default",
        "name": "shell",
        "apiVersion": "v1",
        "subresource": "log",
    },
    "responseStatus": {"metadata": {}, "code": 204},
    "requestReceivedTimestamp": "2026-11-25T22:28:07.292620Z",
    "stageTimestamp": "2026-11-25T22:28:07.294083Z",
    "annotations": {"authorization.k8s.io/decision": "allow", "authorization.k8s.io/reason": ""},
}

# alice (no RBAC rights) runs kubectl get secrets: 403.
FORBIDDEN_LIST_SECRETS: Final[dict[str, Any]] = {
    "kind": "Event",
    "apiVersion": "audit.k8s.io/v1",
    "level": "Metadata",
    "auditID": "751f2a57-6358-48a1-8795-4bce5ea97b8b",
    "stage": "ResponseComplete",
    "requestURI": "/api/v1/namespaces/default/secrets?limit=500",
    "verb": "list",
    "user": {"username": "alice", "uid": "alice-uid", "groups": ["dev", "system:authenticated"]},
    "sourceIPs": ["198.51.100.23"],
    "userAgent": "kubectl/v1.32.4 (linux/amd64) kubernetes/4cb5f07",
    "objectRef": {"resource": "secrets", "namespace": "default", "apiVersion": "v1"},
    "responseStatus": {
        "metadata": {},
        "status": "Failure",
        "message": 'secrets is forbidden: User "alice" cannot list resource '
        '"secrets" in API group "" in the namespace "default"',
        "reason": "Forbidden",
        "details": {"kind": "secrets"},
        "code": 403,
    },
    "requestReceivedTimestamp": "2026-11-25T22:28:07.401007Z",
    "stageTimestamp": "2026-11-25T22:28:07.402728Z",
    "annotations": {"authorization.k8s.io/decision": "forbid", "authorization.k8s.io/reason": ""},
}

# admin runs kubectl get pods --as=bob --as-group=dev.
IMPERSONATED_LIST_PODS: Final[dict[str, Any]] = {
    "kind": "Event",
    "apiVersion": "audit.k8s.io/v1",
    "level": "Metadata",
    "auditID": "ec0749eb-fcaf-4dc7-8587-61e704c8a5f7",
    "stage": "ResponseComplete",
    "requestURI": "/api/v1/namespaces/default/pods?limit=500",
    "verb": "list",
    "user": {
        "username": "admin",
        "uid": "admin-uid",
        "groups": ["system:masters", "system:authenticated"],
    },
    "impersonatedUser": {"username": "bob", "groups": ["dev", "system:authenticated"]},
    "sourceIPs": ["203.0.113.10"],
    "userAgent": "kubectl/v1.32.4 (linux/amd64) kubernetes/4cb5f07",
    "objectRef": {"resource": "pods", "namespace": "default", "apiVersion": "v1"},
    "responseStatus": {"metadata": {}, "code": 200},
    "requestReceivedTimestamp": "2026-11-25T22:28:07.730241Z",
    "stageTimestamp": "2026-11-25T22:28:07.733098Z",
    "annotations": {
        "authorization.k8s.io/decision": "allow",
        "authorization.k8s.io/reason": "RBAC: allowed by RoleBinding "
        '"bob-reads/default" of Role '
        '"pod-reader" to User "bob"',
    },
}

# A pod's service account token, with the extra a bound token carries (hand-written).
SERVICE_ACCOUNT_GET_CONFIGMAP: Final[dict[str, Any]] = {
    "kind": "Event",
    "apiVersion": "audit.k8s.io/v1",
    "level": "Metadata",
    "auditID": "9d5f3a0e-2b7c-4e61-8f4e-3c2a1b0d9e87",
    "stage": "ResponseComplete",
    "requestURI": "/api/v1/namespaces/monitoring/configmaps/grafana-dashboards",
    "verb": "get",
    "user": {
        "username": "system:serviceaccount:monitoring:grafana",
        "uid": "3b9a8f5e-1c2d-4e6f-8a9b-0c1d2e3f4a5b",
        "groups": [
            "system:serviceaccounts",
            "system:serviceaccounts:monitoring",
            "system:authenticated",
        ],
        "extra": {
            "authentication.kubernetes.io/credential-id": [
                "JTI=0b6f4a2e-8c1d-4f3a-9e7b-5d2c1a0f8e6d"
            ],
            "authentication.kubernetes.io/node-name": ["worker-1"],
            "authentication.kubernetes.io/node-uid": ["7e1f0a9b-3c4d-4e5f-8a6b-9c0d1e2f3a4b"],
            "authentication.kubernetes.io/pod-name": ["grafana-6d8f9c7b5-x2k4p"],
            "authentication.kubernetes.io/pod-uid": ["1a2b3c4d-5e6f-4a7b-8c9d-0e1f2a3b4c5d"],
        },
    },
    "sourceIPs": ["10.244.1.17"],
    "userAgent": "grafana-sidecar/1.28.0",
    "objectRef": {
        "resource": "configmaps",
        "namespace": "monitoring",
        "name": "grafana-dashboards",
        "apiVersion": "v1",
    },
    "responseStatus": {"metadata": {}, "code": 200},
    "requestReceivedTimestamp": "2026-11-25T22:28:10.511376Z",
    "stageTimestamp": "2026-11-25T22:28:10.512904Z",
    "annotations": {
        "authorization.k8s.io/decision": "allow",
        "authorization.k8s.io/reason": "RBAC: allowed by RoleBinding "
        '"grafana/monitoring" of Role "grafana" '
        'to ServiceAccount "grafana/monitoring"',
    },
}

# The kubelet reporting a pod's status (hand-written).
NODE_PATCH_POD_STATUS: Final[dict[str, Any]] = {
    "kind": "Event",
    "apiVersion": "audit.k8s.io/v1",
    "level": "Request",
    "auditID": "c4e2b7a1-6d3f-4a8e-9b5c-2f1e0d9c8b7a",
    "stage": "ResponseComplete",
    "requestURI": "/api/v1/namespaces/default/pods/web-7c5ddbdf54-8xk2m/status",
    "verb": "patch",
    "user": {
        "username": "system:node:worker-1",
        "groups": ["system:nodes", "system:authenticated"],
    },
    "sourceIPs": ["10.0.4.21"],
    "userAgent": "kubelet/v1.32.9 (linux/amd64) kubernetes/4cb5f07",
    "objectRef": {
        "resource": "pods",
        "namespace": "default",
        "name": "web-7c5ddbdf54-8xk2m",
        "apiVersion": "v1",
        "subresource": "status",
    },
    "responseStatus": {"metadata": {}, "code": 200},
    "requestObject": {
        "metadata": {"uid": "0f9e8d7c-6b5a-4c3d-9e2f-1a0b9c8d7e6f"},
        "status": {
            "$setElementOrder/conditions": [{"type": "Ready"}, {"type": "ContainersReady"}],
            "conditions": [
                {"lastTransitionTime": "2026-11-25T22:28:09Z", "status": "True", "type": "Ready"},
                {
                    "lastTransitionTime": "2026-11-25T22:28:09Z",
                    "status": "True",
                    "type": "ContainersReady",
                },
            ],
        },
    },
    "requestReceivedTimestamp": "2026-11-25T22:28:09.913044Z",
    "stageTimestamp": "2026-11-25T22:28:09.918215Z",
    "annotations": {"authorization.k8s.io/decision": "allow", "authorization.k8s.io/reason": ""},
}

# kubectl get --raw /version: a non-resource URL.
GET_VERSION: Final[dict[str, Any]] = {
    "kind": "Event",
    "apiVersion": "audit.k8s.io/v1",
    "level": "Metadata",
    "auditID": "6aded6a5-e24b-485a-9015-518ca12b3943",
    "stage": "ResponseComplete",
    "requestURI": "/version",
    "verb": "get",
    "user": {
        "username": "admin",
        "uid": "admin-uid",
        "groups": ["system:masters", "system:authenticated"],
    },
    "sourceIPs": ["203.0.113.10"],
    "userAgent": "kubectl/v1.32.4 (linux/amd64) kubernetes/4cb5f07",
    "responseStatus": {"metadata": {}, "code": 200},
    "requestReceivedTimestamp": "2026-11-25T22:28:08.306622Z",
    "stageTimestamp": "2026-11-25T22:28:08.307068Z",
    "annotations": {"authorization.k8s.io/decision": "allow", "authorization.k8s.io/reason": ""},
}

# kubectl get --raw /apis/apps/v1: discovery, a non-resource URL.
GET_API_RESOURCE_LIST: Final[dict[str, Any]] = {
    "kind": "Event",
    "apiVersion": "audit.k8s.io/v1",
    "level": "Metadata",
    "auditID": "f570110e-c041-49e7-b524-24e3dcc22722",
    "stage": "ResponseComplete",
    "requestURI": "/apis/apps/v1",
    "verb": "get",
    "user": {
        "username": "admin",
        "uid": "admin-uid",
        "groups": ["system:masters", "system:authenticated"],
    },
    "sourceIPs": ["203.0.113.10"],
    "userAgent": "kubectl/v1.32.4 (linux/amd64) kubernetes/4cb5f07",
    "responseStatus": {"metadata": {}, "code": 200},
    "requestReceivedTimestamp": "2026-11-25T22:28:08.540880Z",
    "stageTimestamp": "2026-11-25T22:28:08.541627Z",
    "annotations": {"authorization.k8s.io/decision": "allow", "authorization.k8s.io/reason": ""},
}

# kubectl create token default: the response holds a bearer token.
CREATE_TOKEN_REQUEST: Final[dict[str, Any]] = {
    "kind": "Event",
    "apiVersion": "audit.k8s.io/v1",
    "level": "RequestResponse",
    "auditID": "f7225172-0c0a-4f10-8743-236cc1fe1a03",
    "stage": "ResponseComplete",
    "requestURI": "/api/v1/namespaces/default/serviceaccounts/default/token",
    "verb": "create",
    "user": {
        "username": "admin",
        "uid": "admin-uid",
        "groups": ["system:masters", "system:authenticated"],
    },
    "sourceIPs": ["203.0.113.10"],
    "userAgent": "kubectl/v1.32.4 (linux/amd64) kubernetes/4cb5f07",
    "objectRef": {
        "resource": "serviceaccounts",
        "namespace": "default",
        "name": "default",
        "apiVersion": "v1",
        "subresource": "token",
    },
    "responseStatus": {"metadata": {}, "code": 201},
    "requestObject": {
        "kind": "TokenRequest",
        "apiVersion": "authentication.k8s.io/v1",
        "metadata": {"creationTimestamp": None},
        "spec": {"audiences": None, "expirationSeconds": 600, "boundObjectRef": None},
        "status": {"token": "", "expirationTimestamp": None},
    },
    "responseObject": {
        "kind": "TokenRequest",
        "apiVersion": "authentication.k8s.io/v1",
        "metadata": {
            "name": "default",
            "namespace": "default",
            "creationTimestamp": "2026-11-25T22:28:35Z",
        },
        "spec": {
            "audiences": ["https://kubernetes.default.svc"],
            "expirationSeconds": 600,
            "boundObjectRef": None,
        },
        "status": {
            "token": BEARER_TOKEN,
            "expirationTimestamp": "2026-11-25T22:38:35Z",
        },
    },
    "requestReceivedTimestamp": "2026-11-25T22:28:35.187427Z",
    "stageTimestamp": "2026-11-25T22:28:35.192288Z",
    "annotations": {
        "authentication.kubernetes.io/issued-credential-id": (
            "JTI=cb87625c-a4b0-4525-a15f-570d4fd53e6f"
        ),
        "authorization.k8s.io/decision": "allow",
        "authorization.k8s.io/reason": "",
    },
}

# A TokenReview: the request holds the bearer token under review.
CREATE_TOKEN_REVIEW: Final[dict[str, Any]] = {
    "kind": "Event",
    "apiVersion": "audit.k8s.io/v1",
    "level": "RequestResponse",
    "auditID": "a915672b-32c9-43ea-853d-589be608398a",
    "stage": "ResponseComplete",
    "requestURI": (
        "/apis/authentication.k8s.io/v1/tokenreviews"
        "?fieldManager=kubectl-create&fieldValidation=Strict"
    ),
    "verb": "create",
    "user": {
        "username": "admin",
        "uid": "admin-uid",
        "groups": ["system:masters", "system:authenticated"],
    },
    "sourceIPs": ["203.0.113.10"],
    "userAgent": "kubectl/v1.32.4 (linux/amd64) kubernetes/4cb5f07",
    "objectRef": {
        "resource": "tokenreviews",
        "apiGroup": "authentication.k8s.io",
        "apiVersion": "v1",
    },
    "responseStatus": {"metadata": {}, "code": 201},
    "requestObject": {
        "kind": "TokenReview",
        "apiVersion": "authentication.k8s.io/v1",
        "metadata": {"creationTimestamp": None},
        "spec": {"token": BEARER_TOKEN},
        "status": {"user": {}},
    },
    "responseObject": {
        "kind": "TokenReview",
        "apiVersion": "authentication.k8s.io/v1",
        "metadata": {"creationTimestamp": None},
        "spec": {"token": BEARER_TOKEN},
        "status": {
            "authenticated": True,
            "user": {
                "username": "system:serviceaccount:default:default",
                "uid": "d435e7ac-9d97-485c-9e04-c38081cd71cc",
                "groups": [
                    "system:serviceaccounts",
                    "system:serviceaccounts:default",
                    "system:authenticated",
                ],
                "extra": {
                    "authentication.kubernetes.io/credential-id": [
                        "JTI=cb87625c-a4b0-4525-a15f-570d4fd53e6f"
                    ]
                },
            },
            "audiences": ["https://kubernetes.default.svc"],
        },
    },
    "requestReceivedTimestamp": "2026-11-25T22:28:35.953799Z",
    "stageTimestamp": "2026-11-25T22:28:35.956384Z",
    "annotations": {"authorization.k8s.io/decision": "allow", "authorization.k8s.io/reason": ""},
}

# The same watch's ResponseStarted stage: not a record.
WATCH_PODS_STARTED: Final[dict[str, Any]] = {
    "kind": "Event",
    "apiVersion": "audit.k8s.io/v1",
    "level": "Metadata",
    "auditID": "1f1a3a72-8f31-4ab2-a9a6-b6e85f55e84a",
    "stage": "ResponseStarted",
    "requestURI": "/api/v1/namespaces/default/pods?resourceVersion=249&watch=true",
    "verb": "watch",
    "user": {
        "username": "admin",
        "uid": "admin-uid",
        "groups": ["system:masters", "system:authenticated"],
    },
    "sourceIPs": ["203.0.113.10"],
    "userAgent": "kubectl/v1.32.4 (linux/amd64) kubernetes/4cb5f07",
    "objectRef": {"resource": "pods", "namespace": "default", "apiVersion": "v1"},
    "responseStatus": {"metadata": {}, "code": 200},
    "requestReceivedTimestamp": "2026-11-25T22:28:33.188980Z",
    "stageTimestamp": "2026-11-25T22:28:33.189906Z",
    "annotations": {"authorization.k8s.io/decision": "allow", "authorization.k8s.io/reason": ""},
}


# Every final-stage sample: each becomes exactly one record.
FINAL_STAGE_EVENTS: Final[tuple[dict[str, Any], ...]] = (
    CREATE_DEPLOYMENT,
    GET_SECRET,
    LIST_CONFIGMAPS,
    WATCH_PODS,
    PATCH_DEPLOYMENT,
    PATCH_DEPLOYMENT_SCALE,
    MERGE_PATCH_SECRET,
    JSON_PATCH_SECRET,
    APPLY_SECRET,
    LIST_SECRETS_TABLE,
    DELETE_DEPLOYMENT,
    DELETE_COLLECTION_JOBS,
    EXEC_POD,
    PORT_FORWARD_POD,
    GET_POD_LOG,
    FORBIDDEN_LIST_SECRETS,
    IMPERSONATED_LIST_PODS,
    SERVICE_ACCOUNT_GET_CONFIGMAP,
    NODE_PATCH_POD_STATUS,
    GET_VERSION,
    GET_API_RESOURCE_LIST,
    CREATE_TOKEN_REQUEST,
    CREATE_TOKEN_REVIEW,
)

# Values that must never appear in a record (base64 and clear text).
SECRET_VALUES: Final = (
    "aHVudGVyMg==",  # hunter2
    "cm9vdA==",  # root
    "bmV3cGFzcw==",  # newpass
    "YWRtaW4=",  # admin
    "czNjcjN0",  # s3cr3t
    "s3cr3t",
    "eyJhbGciOiJSUzI1NiIsImtpZCI6IlI3T3VlZ3hy",  # the bearer token
)


def sample_events() -> list[dict[str, Any]]:
    """Fresh copies of every final-stage sample (one record each)."""
    return copy.deepcopy(list(FINAL_STAGE_EVENTS))


def event_list(*events: object) -> dict[str, Any]:
    """An EventList webhook body, as the kube-apiserver posts it (items need not be valid)."""
    return {
        "kind": "EventList",
        "apiVersion": "audit.k8s.io/v1",
        "metadata": {},
        "items": list(events),
    }


# Any JSON value, small: what a damaged field may hold.
JSON_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**63 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=8,
)


def damaged_event(data: st.DataObject) -> dict[str, Any]:
    """A copy of a sample with one field, at the top or nested, replaced by random JSON."""
    event = copy.deepcopy(data.draw(st.sampled_from(FINAL_STAGE_EVENTS)))
    target: dict[str, Any] = event
    while True:
        key = data.draw(st.sampled_from(sorted(target)) | st.text(max_size=8))
        inner = target.get(key)
        if isinstance(inner, dict) and inner and data.draw(st.booleans()):
            target = inner
            continue
        target[key] = data.draw(JSON_VALUES)
        return event
