"""Who is calling the query API, and which event data stores they may read.

Why the Kubernetes API decides both: the people who read audit events are
the cluster's own users and workloads, who already hold a Kubernetes
identity (the token in their kubeconfig, a ServiceAccount token) and whose
permissions are already written as RBAC. A second user database in the
gateway would drift from that; asking the apiserver keeps one source of
truth, works with every authenticator the cluster is configured with (static
tokens, ServiceAccounts, OIDC, webhooks) and every authorizer (RBAC,
webhook), and puts every decision in the cluster's own audit log.

- Authentication: the caller's bearer token goes to a `TokenReview`; the
  user it names (username, uid, groups, extra) is the caller.
- Authorization: reading a store (lookup, or any SQL reference to it) is a
  `SubjectAccessReview` for verb `get` on the subresource `events` of
  `eventdatastores` in group `audit.trail-operator.dev`, with the store's
  namespace and name. The subresource is not served by the apiserver; RBAC
  matches it by name all the same, so reading events is a permission of
  its own, apart from reading the EventDataStore object (its spec and
  status). A Role that lets a team read its namespace's stores:

      apiVersion: rbac.authorization.k8s.io/v1
      kind: Role
      metadata: {name: event-reader, namespace: team-a}
      rules:
      - apiGroups: ["audit.trail-operator.dev"]
        resources: ["eventdatastores/events"]
        verbs: ["get"]
        # resourceNames: ["audit"]   # optionally, only some stores

  The Event history lives in the admin namespace, so reading it takes this
  permission there (cluster admins have it through `system:masters` or a
  ClusterRole bound cluster-wide).
- The gateway itself needs `create` on `tokenreviews` and
  `subjectaccessreviews`: the built-in ClusterRole `system:auth-delegator`.

Why the caches: a page of results (or a CLI that pages) would otherwise cost
two apiserver round trips per request. Token reviews are kept 30 s (keyed by
a SHA-256 of the token, so no token is held in memory longer than the
request) and decisions 10 s, so a revoked RoleBinding takes effect within
10 s, as with the apiserver's own webhook authorizer caches. Failures to
reach the apiserver are never cached.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Final, Generic, TypeVar

from trail_operator.config import API_GROUP

log = logging.getLogger(__name__)

READ_VERB: Final = "get"
STORE_RESOURCE: Final = "eventdatastores"
EVENTS_SUBRESOURCE: Final = "events"
READ_PERMISSION: Final = (
    f"{READ_VERB} on {STORE_RESOURCE}/{EVENTS_SUBRESOURCE} (API group {API_GROUP})"
)

TOKEN_CACHE_SECONDS: Final = 30.0
DECISION_CACHE_SECONDS: Final = 10.0
CACHE_MAX_ENTRIES: Final = 10_000
# Seconds an apiserver review may take before the caller is told to retry.
REVIEW_TIMEOUT_SECONDS: Final = 10
# Threads for reviews, apart from the event loop's default executor, which
# the ingest path uses for its inserts: a slow apiserver must not stall it.
REVIEW_THREADS: Final = 4


@dataclass(frozen=True)
class Caller:
    """An authenticated user, as the apiserver's TokenReview named them."""

    username: str
    groups: tuple[str, ...] = ()
    uid: str = ""
    extra: Mapping[str, tuple[str, ...]] = field(default_factory=dict)

    def cache_key(self) -> tuple[Any, ...]:
        extra = tuple(sorted((key, tuple(values)) for key, values in self.extra.items()))
        return (self.username, self.uid, tuple(sorted(self.groups)), extra)


class AuthzError(Exception):
    """A request the query API will not serve; `status` and `code` are for the answer."""

    status = 500
    code = "InternalFailure"


class UnauthenticatedError(AuthzError):
    """No bearer token, or one the apiserver does not accept."""

    status = 401
    code = "Unauthorized"


class AccessDeniedError(AuthzError):
    """The caller may not read the store they named."""

    status = 403
    code = "AccessDeniedException"


class AuthzUnavailableError(AuthzError):
    """The apiserver could not be asked; the caller should retry."""

    status = 503
    code = "ServiceUnavailable"


K = TypeVar("K")
V = TypeVar("V")


class ExpiringCache(Generic[K, V]):
    """A bounded map whose entries expire `ttl` seconds after they were put; thread-safe."""

    def __init__(self, ttl: float, max_entries: int = CACHE_MAX_ENTRIES,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.ttl = ttl
        self.max_entries = max_entries
        self._clock = clock
        self._items: dict[K, tuple[float, V]] = {}
        self._lock = threading.Lock()

    def get(self, key: K) -> V | None:
        with self._lock:
            item = self._items.get(key)
            if item is None:
                return None
            expires, value = item
            if expires <= self._clock():
                del self._items[key]
                return None
            return value

    def put(self, key: K, value: V) -> None:
        with self._lock:
            now = self._clock()
            if len(self._items) >= self.max_entries:
                self._items = {k: v for k, v in self._items.items() if v[0] > now}
                # Still full: drop the oldest half (dicts keep insertion order).
                while len(self._items) >= self.max_entries:
                    for stale in list(self._items)[: max(1, self.max_entries // 2)]:
                        del self._items[stale]
            self._items.pop(key, None)
            self._items[key] = (now + self.ttl, value)

    def clear(self) -> None:
        with self._lock:
            self._items.clear()


@dataclass(frozen=True)
class TokenReview:
    """What the apiserver said of one token: its user, or None when it refused it."""

    caller: Caller | None

    def checked(self) -> Caller:
        if self.caller is None:
            raise UnauthenticatedError(
                "the bearer token was not accepted by the Kubernetes API (expired, revoked"
                " or not a token of this cluster): get a fresh one, e.g. with"
                " `kubectl create token <serviceaccount>`"
            )
        return self.caller


def store_label(namespace: str, name: str) -> str:
    return f"EventDataStore {namespace}/{name}"


class KubernetesAuthorizer:
    """TokenReview and SubjectAccessReview against the cluster, with short caches.

    The blocking review calls (`authenticate`, `may_read`) suit worker
    threads; the `*_async` forms answer from the caches on the event loop and
    leave it only to ask the apiserver, on threads of their own.
    """

    def __init__(self, api_client: Any = None, token_ttl: float = TOKEN_CACHE_SECONDS,
                 decision_ttl: float = DECISION_CACHE_SECONDS) -> None:
        # Made on first use: credentials are loaded after the gateway is built.
        self._api_client = api_client
        self._client_lock = threading.Lock()
        self._tokens: ExpiringCache[bytes, TokenReview] = ExpiringCache(token_ttl)
        self._decisions: ExpiringCache[tuple[Any, ...], bool] = ExpiringCache(decision_ttl)
        # Threads start on first use, so gateways that serve no queries make none.
        self._executor = ThreadPoolExecutor(REVIEW_THREADS, thread_name_prefix="authz")

    # authentication ---------------------------------------------------------

    def authenticate(self, token: str | None) -> Caller:
        """The caller `token` belongs to; UnauthenticatedError or AuthzUnavailableError."""
        key = self._token_key(token)
        review = self._tokens.get(key)
        if review is None:
            assert token is not None  # _token_key refused a missing one
            review = TokenReview(self._review_token(token))
            self._tokens.put(key, review)
        return review.checked()

    async def authenticate_async(self, token: str | None) -> Caller:
        review = self._tokens.get(self._token_key(token))
        if review is not None:
            return review.checked()
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, self.authenticate, token)

    @staticmethod
    def _token_key(token: str | None) -> bytes:
        if not token:
            raise UnauthenticatedError(
                "a bearer token is required: send your Kubernetes token as"
                " 'Authorization: Bearer <token>' (trailctl takes it from your kubeconfig"
                " or --token)"
            )
        return hashlib.sha256(token.encode()).digest()

    def _review_token(self, token: str) -> Caller | None:
        from kubernetes import client as k8s

        body = k8s.V1TokenReview(spec=k8s.V1TokenReviewSpec(token=token))
        answer = self._call("review the bearer token", lambda api: k8s.AuthenticationV1Api(
            api).create_token_review(body, _request_timeout=REVIEW_TIMEOUT_SECONDS))
        status = answer.status
        if status is None or not status.authenticated or status.user is None:
            return None
        user = status.user
        return Caller(
            username=str(user.username or ""),
            groups=tuple(user.groups or ()),
            uid=str(user.uid or ""),
            extra={str(k): tuple(v or ()) for k, v in (user.extra or {}).items()},
        )

    # authorization ----------------------------------------------------------

    def may_read(self, caller: Caller, namespace: str, name: str) -> bool:
        """Whether `caller` may read the events of store `namespace/name`."""
        key = (caller.cache_key(), namespace, name)
        cached = self._decisions.get(key)
        if cached is not None:
            return cached
        allowed = self._review_access(caller, namespace, name)
        self._decisions.put(key, allowed)
        return allowed

    def require_read(self, caller: Caller, namespace: str, name: str) -> None:
        if not self.may_read(caller, namespace, name):
            raise AccessDeniedError(denied_message(caller, namespace, name))

    async def require_read_async(self, caller: Caller, namespace: str, name: str) -> None:
        cached = self._decisions.get((caller.cache_key(), namespace, name))
        if cached is None:
            loop = asyncio.get_running_loop()
            cached = await loop.run_in_executor(
                self._executor, self.may_read, caller, namespace, name)
        if not cached:
            raise AccessDeniedError(denied_message(caller, namespace, name))

    def _review_access(self, caller: Caller, namespace: str, name: str) -> bool:
        from kubernetes import client as k8s

        body = k8s.V1SubjectAccessReview(spec=k8s.V1SubjectAccessReviewSpec(
            user=caller.username,
            groups=list(caller.groups),
            uid=caller.uid or None,
            extra={k: list(v) for k, v in caller.extra.items()} or None,
            resource_attributes=k8s.V1ResourceAttributes(
                group=API_GROUP, resource=STORE_RESOURCE, subresource=EVENTS_SUBRESOURCE,
                verb=READ_VERB, namespace=namespace, name=name),
        ))
        answer = self._call(
            f"check access to {store_label(namespace, name)}",
            lambda api: k8s.AuthorizationV1Api(api).create_subject_access_review(
                body, _request_timeout=REVIEW_TIMEOUT_SECONDS))
        status = answer.status
        return bool(status is not None and status.allowed and not status.denied)

    # plumbing ---------------------------------------------------------------

    def _client(self) -> Any:
        with self._client_lock:
            if self._api_client is None:
                from kubernetes import client as k8s

                self._api_client = k8s.ApiClient()
            return self._api_client

    def _call(self, what: str, call: Callable[[Any], Any]) -> Any:
        from kubernetes.client.exceptions import ApiException

        try:
            return call(self._client())
        except ApiException as exc:
            hint = (" (grant the gateway's ServiceAccount the ClusterRole"
                    " system:auth-delegator)" if exc.status in (401, 403) else "")
            log.warning("cannot %s: the Kubernetes API answered %s %s", what, exc.status,
                        exc.reason)
            raise AuthzUnavailableError(
                f"the gateway cannot {what}: the Kubernetes API answered {exc.status}"
                f" {exc.reason}{hint}; retry later") from None
        except Exception as exc:  # connection refused, timeouts, TLS: all mean "retry"
            log.warning("cannot %s: %s", what, exc)
            raise AuthzUnavailableError(
                f"the gateway cannot {what}: the Kubernetes API is unreachable; retry later"
            ) from None


def denied_message(caller: Caller, namespace: str, name: str) -> str:
    return (
        f"{caller.username} may not read {store_label(namespace, name)}: reading it takes"
        f" {READ_PERMISSION} in namespace {namespace}"
    )
