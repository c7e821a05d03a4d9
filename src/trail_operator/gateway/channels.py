"""PutAuditEvents channels: `<namespace>/<integration>` resolved to a token and destinations.

A channel is an Integration of type `push`. Its bearer token is the `token`
key of the Secret named in `status.tokenSecretName` (made by the Integration
controller; until then `<integration>-token`). Lookups are cached briefly so a
busy channel does not cost an API call per request, yet a rotated token or a
deleted Integration takes effect within seconds.
"""

from __future__ import annotations

import base64
import hmac
import time
from dataclasses import dataclass

from kubernetes import client as k8s

from trail_operator.config import API_GROUP, API_VERSION


class ChannelError(LookupError):
    """The channel does not exist or cannot take events; `status` is the HTTP status."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code


@dataclass(frozen=True)
class Channel:
    namespace: str
    name: str
    token: str
    destinations: tuple[str, ...]

    @property
    def ref(self) -> str:
        return f"{self.namespace}/{self.name}"

    def token_matches(self, presented: str) -> bool:
        return bool(self.token) and hmac.compare_digest(self.token.encode(), presented.encode())


def parse_channel(value: str | None) -> tuple[str, str]:
    if not value or value.count("/") != 1 or not all(value.split("/")):
        raise ChannelError(400, "ChannelARNInvalid",
                           f"channel must be '<namespace>/<integration>', got {value!r}")
    namespace, name = value.split("/")
    return namespace, name


class ChannelDirectory:
    def __init__(self, ttl_seconds: float = 5.0) -> None:
        self.ttl_seconds = ttl_seconds
        self._cache: dict[tuple[str, str], tuple[float, Channel | ChannelError]] = {}

    def resolve(self, namespace: str, name: str) -> Channel:
        """Blocking (Kubernetes API calls): run it in a worker thread."""
        key = (namespace, name)
        cached = self._cache.get(key)
        if cached and time.monotonic() - cached[0] < self.ttl_seconds:
            outcome = cached[1]
        else:
            try:
                outcome = _load(namespace, name)
            except ChannelError as exc:
                outcome = exc
            self._cache[key] = (time.monotonic(), outcome)
        if isinstance(outcome, ChannelError):
            raise outcome
        return outcome


def _load(namespace: str, name: str) -> Channel:
    ref = f"{namespace}/{name}"
    try:
        integration = k8s.CustomObjectsApi().get_namespaced_custom_object(
            API_GROUP, API_VERSION, namespace, "integrations", name)
    except k8s.ApiException as exc:
        if exc.status == 404:
            raise ChannelError(404, "ChannelNotFound", f"no Integration {ref}") from exc
        raise ChannelError(503, "InternalFailure",
                           f"cannot read Integration {ref}: {exc.status} {exc.reason}") from exc
    spec = integration.get("spec") or {}
    if spec.get("type") != "push":
        raise ChannelError(400, "ChannelNotFound",
                           f"Integration {ref} is of type {spec.get('type')!r}, not 'push'")
    destinations = tuple(spec.get("destinations") or ())
    if not destinations:
        raise ChannelError(400, "ChannelNotFound", f"Integration {ref} names no destinations")
    secret_name = (integration.get("status") or {}).get("tokenSecretName") or f"{name}-token"
    try:
        secret = k8s.CoreV1Api().read_namespaced_secret(secret_name, namespace)
    except k8s.ApiException as exc:
        raise ChannelError(503 if exc.status != 404 else 403, "ChannelUnavailable",
                           f"token Secret {namespace}/{secret_name} of {ref} cannot be read: "
                           f"{exc.status} {exc.reason}") from exc
    encoded = (secret.data or {}).get("token")
    if not encoded:
        raise ChannelError(403, "ChannelUnavailable",
                           f"Secret {namespace}/{secret_name} has no 'token' key")
    return Channel(namespace, name, base64.b64decode(encoded).decode().strip(), destinations)
