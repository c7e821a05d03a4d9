"""How a gateway listens, authenticates and batches."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class GatewayConfig:
    host: str = "127.0.0.1"
    port: int = 8443
    # TLS: without a certificate the gateway serves plain HTTP, which only
    # suits a loopback sandbox: the apiserver sends no bearer token over it.
    tls_cert: Path | None = None
    tls_key: Path | None = None
    # Client certificates signed by this CA are checked against `audit_client_names`.
    client_ca: Path | None = None
    audit_client_names: frozenset[str] = frozenset({"kube-apiserver"})
    # Alternatively the audit webhook may present this bearer token.
    audit_token: str | None = None
    max_audit_body_bytes: int = 64 * 1024 * 1024
    batch_max_rows: int = 10_000
    # Inserts in flight at once (bounded by the store's client pool).
    max_concurrent_flushes: int = 2
    # Seconds a batch may wait for more rows while the store is idle.
    batch_linger: float = 0.01
    # Rows accepted but not stored yet, past which calls are refused with 429: the
    # gateway's memory bound (~1 KB a row). Room for the open spool segment and two
    # being inserted, with some to spare.
    max_pending_rows: int = 300_000
    routes_refresh_seconds: float = 1.0
    # With a spool directory, calls are acknowledged once their rows are in an
    # fsync'ed write-ahead log there, and inserted in batches of `spool_max_rows`
    # or `spool_linger` seconds (see gateway/spooled_batcher.py). It must be on
    # storage that outlives the process. Without one, a call is acknowledged
    # after its own INSERT commits.
    spool_dir: Path | None = None
    spool_linger: float = 0.5
    # Rows of all tables per spool segment. Larger than `batch_max_rows`: a segment's
    # rows are split by table, and bigger parts mean fewer merges (at 10,000 the
    # merges of a 200k-event burst cost ~10 us per event inside it). Below ~32 MB a
    # table's part stays compact, which is cheaper to write.
    spool_max_rows: int = 60_000
    # A segment with `spool_busy_rows` or more at its linger is filling fast: it may
    # stay open up to `spool_max_linger` seconds to reach `spool_max_rows`. Under
    # heavy load merges of small parts cost the gateway a fifth of its CPU; at lighter
    # loads rows stay queryable within the linger.
    spool_max_linger: float = 1.5
    spool_busy_rows: int = 10_000
    # ...or sooner, once the senders pause this long with this many rows spooled.
    spool_idle_seal: float = 0.05
    spool_min_rows: int = 1_000
    # Child processes that parse audit bodies (see gateway/parse_pool.py); None: one
    # per CPU this process may use, up to 4 (past that the event loop is the limit).
    # 0 parses on the event loop.
    parse_workers: int | None = None

    @property
    def workers_for_parsing(self) -> int:
        if self.parse_workers is not None:
            return max(0, self.parse_workers)
        return min(4, len(os.sched_getaffinity(0)))

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> GatewayConfig:
        env = dict(os.environ if env is None else env)

        def path(key: str) -> Path | None:
            return Path(env[key]) if env.get(key) else None

        return cls(
            host=env.get("TRAIL_GATEWAY_HOST", cls.host),
            port=int(env.get("TRAIL_GATEWAY_PORT", cls.port)),
            tls_cert=path("TRAIL_GATEWAY_TLS_CERT"),
            tls_key=path("TRAIL_GATEWAY_TLS_KEY"),
            client_ca=path("TRAIL_GATEWAY_CLIENT_CA"),
            audit_token=env.get("TRAIL_GATEWAY_AUDIT_TOKEN") or None,
            batch_linger=float(env.get("TRAIL_GATEWAY_BATCH_LINGER", cls.batch_linger)),
            batch_max_rows=int(env.get("TRAIL_GATEWAY_BATCH_MAX_ROWS", cls.batch_max_rows)),
            max_concurrent_flushes=int(env.get("TRAIL_GATEWAY_MAX_FLUSHES",
                                               cls.max_concurrent_flushes)),
            spool_dir=path("TRAIL_GATEWAY_SPOOL_DIR"),
            spool_linger=float(env.get("TRAIL_GATEWAY_SPOOL_LINGER", cls.spool_linger)),
            spool_max_linger=float(env.get("TRAIL_GATEWAY_SPOOL_MAX_LINGER",
                                           cls.spool_max_linger)),
            spool_busy_rows=int(env.get("TRAIL_GATEWAY_SPOOL_BUSY_ROWS", cls.spool_busy_rows)),
            spool_max_rows=int(env.get("TRAIL_GATEWAY_SPOOL_MAX_ROWS", cls.spool_max_rows)),
            spool_idle_seal=float(env.get("TRAIL_GATEWAY_SPOOL_IDLE_SEAL", cls.spool_idle_seal)),
            spool_min_rows=int(env.get("TRAIL_GATEWAY_SPOOL_MIN_ROWS", cls.spool_min_rows)),
            max_pending_rows=int(env.get("TRAIL_GATEWAY_MAX_PENDING_ROWS",
                                         cls.max_pending_rows)),
            parse_workers=(int(env["TRAIL_GATEWAY_PARSE_WORKERS"])
                           if env.get("TRAIL_GATEWAY_PARSE_WORKERS") else None),
        )
