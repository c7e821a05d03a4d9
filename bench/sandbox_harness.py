"""A throw-away sandbox for benchmarks: control plane + all-in-one process in a temp dir."""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from trail_operator.cli.processes import all_in_one_in_thread, load_kube_credentials
from trail_operator.cli.sandbox import install_crds, sandbox_gateway_config
from trail_operator.config import Settings
from trail_operator.gateway.config import GatewayConfig
from trail_operator.sandbox.controlplane import ControlPlane, free_port
from trail_operator.store.client import Store


@dataclass
class BenchSandbox:
    plane: ControlPlane
    store: Store
    settings: Settings
    gateway: GatewayConfig


@contextmanager
def bench_sandbox(**gateway_overrides: Any) -> Iterator[BenchSandbox]:
    with tempfile.TemporaryDirectory(prefix="trail-bench-") as tmp:
        root = Path(tmp)
        plane = ControlPlane(root / "controlplane", gateway_port=free_port())
        plane.start()
        try:
            install_crds(plane.kubeconfig)
            os.environ["KUBECONFIG"] = str(plane.kubeconfig)
            load_kube_credentials()
            settings = Settings(cluster_name="bench", region="bench-1", store_dsn=f"chdb://{root}/ch",
                                data_dir=root)
            store = Store(settings.store_dsn, settings.store_database)
            config = replace(sandbox_gateway_config(plane, root), **gateway_overrides)
            with all_in_one_in_thread(settings, config, store):
                yield BenchSandbox(plane, store, settings, config)
        finally:
            plane.stop()


def report(title: str, figures: dict[str, dict[str, Any]]) -> None:
    """Print figures readably, then one JSON line of them (the contract of bench/)."""
    print(f"\n{title}")
    for name, figure in figures.items():
        limit = f" (limit {figure['limit']} {figure['unit']}, ratio {figure['ratio']:.3f})" \
            if "limit" in figure else ""
        print(f"  {name:<40} {figure['value']:>12.3f} {figure['unit']}{limit}")
    print(json.dumps(figures, sort_keys=True))
