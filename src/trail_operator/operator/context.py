"""What the operator's handlers share: settings, the default store, other stores.

Passed to Kopf as its `memo`, so handlers find their dependencies in their
arguments and nothing lives in module globals.
"""

from __future__ import annotations

import base64
import threading
from dataclasses import dataclass, field
from typing import Any

from kubernetes import client as k8s

from trail_operator.config import Settings
from trail_operator.store.client import Store


class StoreConnectionError(RuntimeError):
    """The store an EventDataStore names cannot be resolved (Secret missing, no DSN)."""


@dataclass
class OperatorContext:
    settings: Settings
    store: Store
    # Stores named by `spec.clickhouse.secretRef`, by DSN: one client per server.
    _stores: dict[str, Store] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def store_for(self, namespace: str, spec: dict[str, Any]) -> tuple[Store, str | None]:
        """The store (and ON CLUSTER name) an EventDataStore's spec points at."""
        ref = (spec.get("clickhouse") or {}).get("secretRef")
        if not ref:
            return self.store, None
        secret = _read_secret(namespace, str(ref["name"]))
        dsn = secret.get("dsn")
        if not dsn:
            raise StoreConnectionError(
                f"Secret {namespace}/{ref['name']} has no 'dsn' key (spec.clickhouse.secretRef)"
            )
        cluster = secret.get("cluster") or (spec.get("clickhouse") or {}).get("cluster")
        if dsn == self.store.dsn:
            return self.store, cluster
        with self._lock:
            store = self._stores.get(dsn)
            if store is None:
                store = Store(dsn, self.settings.store_database, secret.get("user"),
                              secret.get("password"))
                self._stores[dsn] = store
        return store, cluster


def _read_secret(namespace: str, name: str) -> dict[str, str]:
    try:
        secret = k8s.CoreV1Api().read_namespaced_secret(name, namespace)
    except k8s.ApiException as exc:
        raise StoreConnectionError(
            f"cannot read Secret {namespace}/{name} named by spec.clickhouse.secretRef:"
            f" {exc.status} {exc.reason}"
        ) from exc
    return {key: base64.b64decode(value).decode() for key, value in (secret.data or {}).items()}
