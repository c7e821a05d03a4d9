"""Time from `kubectl apply` to Ready for 1 and for 100 EventDataStores.

Goals (issue 2): under 2 s for one, under 60 s for 100. Runs a real control
plane and the all-in-one operator process in a temp dir.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

from kubernetes import client as k8s

sys.path.insert(0, str(Path(__file__).parent))
from sandbox_harness import bench_sandbox, report
from trail_operator.config import API_GROUP, API_VERSION


def manifest(namespace: str, names: list[str]) -> str:
    return "".join(
        f"---\napiVersion: {API_GROUP}/{API_VERSION}\nkind: EventDataStore\n"
        f"metadata:\n  name: {name}\n  namespace: {namespace}\nspec:\n  retentionDays: 30\n"
        for name in names
    )


def ready_count(namespace: str) -> int:
    listed = k8s.CustomObjectsApi().list_namespaced_custom_object(
        API_GROUP, API_VERSION, namespace, "eventdatastores")
    return sum(
        1 for item in listed["items"]
        for c in (item.get("status") or {}).get("conditions") or []
        if c["type"] == "Ready" and c["status"] == "True"
    )


def apply_and_wait(kubeconfig: Path, namespace: str, names: list[str],
                   timeout: float = 300) -> float:
    subprocess.run(["kubectl", "--kubeconfig", str(kubeconfig), "create", "namespace", namespace],
                   check=True, capture_output=True)
    start = time.monotonic()
    subprocess.run(["kubectl", "--kubeconfig", str(kubeconfig), "apply", "-f", "-"],
                   input=manifest(namespace, names), text=True, check=True, capture_output=True)
    while ready_count(namespace) < len(names):
        if time.monotonic() - start > timeout:
            raise RuntimeError(f"only {ready_count(namespace)}/{len(names)} Ready after {timeout}s")
        time.sleep(0.05)
    return time.monotonic() - start


def main() -> None:
    with bench_sandbox() as sandbox:
        kubeconfig = sandbox.plane.kubeconfig
        apply_and_wait(kubeconfig, "warmup", ["warmup"])
        one = apply_and_wait(kubeconfig, "bench-one", ["audit"])
        hundred = apply_and_wait(kubeconfig, "bench-hundred", [f"eds-{i:03d}" for i in range(100)])
    report("apply -> Ready (real kube-apiserver, Kopf operator, chDB)", {
        "one_store_seconds": {"value": one, "unit": "s", "limit": 2.0, "ratio": one / 2.0},
        "hundred_stores_seconds": {"value": hundred, "unit": "s", "limit": 60.0,
                                   "ratio": hundred / 60.0},
    })


if __name__ == "__main__":
    main()
