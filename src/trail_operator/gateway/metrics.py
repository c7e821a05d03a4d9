"""Prometheus metrics of the gateway, in a registry of its own.

A private registry (not the global default) keeps two gateways in one process,
as in tests, from colliding, and `/metrics` shows only the gateway's series.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


@dataclass
class GatewayMetrics:
    registry: CollectorRegistry = field(default_factory=CollectorRegistry)

    def __post_init__(self) -> None:
        r = self.registry
        self.received = Counter("trail_gateway_events_received", "Events received, by source",
                                ["source"], registry=r)
        self.accepted = Counter("trail_gateway_events_accepted",
                                "Events accepted and stored, by source", ["source"], registry=r)
        self.rejected = Counter("trail_gateway_events_rejected",
                                "Events or calls rejected, by source and reason",
                                ["source", "reason"], registry=r)
        self.inserted = Counter("trail_gateway_rows_inserted",
                                "Rows inserted, by event data store", ["store"], registry=r)
        self.duplicates = Counter("trail_gateway_duplicates_dropped",
                                  "Events dropped as retried copies of stored events",
                                  registry=r)
        self.batch_latency = Histogram(
            "trail_gateway_batch_latency_seconds", "Time from accepting a call to its insert",
            buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10), registry=r)
        self.insert_failures = Counter("trail_gateway_insert_failures",
                                       "Inserts that failed, by store", ["store"], registry=r)
        self.refused_rows = Counter(
            "trail_gateway_rows_refused_by_store",
            "Rows the store refused for their data, set aside instead of blocking the rest",
            ["store"], registry=r)
        self.queue_depth = Gauge("trail_gateway_queue_rows",
                                 "Rows waiting to be inserted", registry=r)
