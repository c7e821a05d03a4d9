"""Install-time settings shared by every component.

Read once from the environment (the Helm chart and `trailctl up` set them), so
each component can be started on its own with the same view of the install.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

API_GROUP = "audit.trail-operator.dev"
API_VERSION = "v1alpha1"
EVENT_HISTORY_NAME = "event-history"
EVENT_HISTORY_RETENTION_DAYS = 90


@dataclass(frozen=True)
class Settings:
    """Who this install is (cluster, region) and where its store lives."""

    cluster_name: str = "local"
    region: str = "local-1"
    admin_namespace: str = "trail-system"
    # `chdb:///path` for the embedded engine, `http(s)://host:8123` for a server.
    store_dsn: str = "chdb://./.trail/chdb"
    store_database: str = "trail"
    data_dir: Path = field(default_factory=lambda: Path(".trail"))

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> Settings:
        env = dict(os.environ if env is None else env)
        data_dir = Path(env.get("TRAIL_DATA_DIR", ".trail"))
        return cls(
            cluster_name=env.get("TRAIL_CLUSTER_NAME", cls.cluster_name),
            region=env.get("TRAIL_REGION", cls.region),
            admin_namespace=env.get("TRAIL_ADMIN_NAMESPACE", cls.admin_namespace),
            store_dsn=env.get("TRAIL_STORE_DSN", f"chdb://{data_dir.resolve()}/chdb"),
            store_database=env.get("TRAIL_STORE_DATABASE", cls.store_database),
            data_dir=data_dir,
        )
