"""Fixtures that run trail-operator itself against the real control plane.

One chDB store serves the whole test session: chDB opens one data path per
process, and the operator and gateway under test run in this process (as in
the sandbox), so tests read the very tables the components write.
"""

from __future__ import annotations

import os
import time

# Read by the operator's timers when the handlers are imported, so set it first.
os.environ.setdefault("TRAIL_STATUS_INTERVAL", "2")

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests
from kubernetes import client as k8s

from trail_operator.cli.processes import all_in_one_in_thread, load_kube_credentials
from trail_operator.cli.sandbox import install_crds, sandbox_gateway_config
from trail_operator.config import API_GROUP, API_VERSION, Settings
from trail_operator.gateway.config import GatewayConfig
from trail_operator.sandbox.controlplane import ControlPlane
from trail_operator.store.client import Store

ADMIN_NAMESPACE = "trail-system"


@pytest.fixture(scope="session")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Store]:
    """The session's one embedded ClickHouse (chDB allows one data path per process)."""
    path = tmp_path_factory.mktemp("chdb")
    store = Store(f"chdb://{path}", "trail")
    yield store
    store.close()


def wait_for(what: str, check: Callable[[], Any], timeout: float = 30.0,
             interval: float = 0.2) -> Any:
    """Poll `check` until it returns something true (an API error counts as not yet)."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = check()
        except k8s.ApiException as exc:
            last = exc
        else:
            if last:
                return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}; last: {last!r}")


@dataclass
class Trail:
    """The running all-in-one process (operator + gateway) and what it talks to."""

    plane: ControlPlane
    store: Store
    settings: Settings
    gateway: GatewayConfig

    @property
    def gateway_url(self) -> str:
        return f"https://127.0.0.1:{self.gateway.port}"

    def eds(self, namespace: str, name: str) -> dict[str, Any]:
        return dict(k8s.CustomObjectsApi().get_namespaced_custom_object(
            API_GROUP, API_VERSION, namespace, "eventdatastores", name))

    def wait_for(self, what: str, check: Callable[[], Any], timeout: float = 30.0,
                 interval: float = 0.2) -> Any:
        return wait_for(what, check, timeout, interval)

    def wait_stored(self, timeout: float = 30.0) -> None:
        """Wait until the gateway has inserted every row it acknowledged from its spool."""
        def queue_empty() -> bool:
            answer = requests.get(f"{self.gateway_url}/metrics", timeout=5,
                                  verify=str(self.plane.pki.ca_cert))
            for line in answer.text.splitlines():
                if line.startswith("trail_gateway_queue_rows "):
                    return float(line.split()[1]) == 0
            return False

        self.wait_for("the gateway's spool to be inserted", queue_empty, timeout, interval=0.05)

    def wait_ready(self, namespace: str, name: str, timeout: float = 30.0) -> dict[str, Any]:
        def ready() -> dict[str, Any] | None:
            obj = self.eds(namespace, name)
            for condition in (obj.get("status") or {}).get("conditions") or []:
                if condition["type"] == "Ready" and condition["status"] == "True":
                    return obj
            return None

        result: dict[str, Any] = self.wait_for(f"{namespace}/{name} Ready", ready, timeout)
        return result


@pytest.fixture(scope="session")
def trail(control_plane: ControlPlane, store: Store) -> Iterator[Trail]:
    os.environ["KUBECONFIG"] = str(control_plane.kubeconfig)
    install_crds(control_plane.kubeconfig)
    load_kube_credentials()
    settings = Settings(cluster_name="test-cluster", region="test-1",
                        admin_namespace=ADMIN_NAMESPACE, store_dsn=store.dsn,
                        data_dir=Path(str(store.dsn).removeprefix("chdb://")))
    config = sandbox_gateway_config(control_plane, control_plane.workdir)
    with all_in_one_in_thread(settings, config, store):
        yield Trail(control_plane, store, settings, config)


def unique_namespace(prefix: str) -> str:
    """A fresh namespace name: without a controller-manager namespaces never finish deleting."""
    return f"{prefix}-{time.time_ns() % 10**9}"


def create_namespace(name: str) -> str:
    try:
        k8s.CoreV1Api().create_namespace(k8s.V1Namespace(metadata=k8s.V1ObjectMeta(name=name)))
    except k8s.ApiException as exc:
        if exc.status != 409:
            raise
    return name
