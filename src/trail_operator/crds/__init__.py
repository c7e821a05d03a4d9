"""Custom resource models: the single source of the CRD schemas in `crds/`.

One module per kind (`eventdatastore`, `trail`, `integration`) with its spec
and status models and a `KindInfo`; `schema` turns them into CRDs and
`generate` writes `crds/*.yaml`. Pure: no Kubernetes client, no I/O.
"""

from trail_operator.crds.common import CONDITION_READY, Condition, KindInfo, PrinterColumn
from trail_operator.crds.eventdatastore import (
    EVENT_DATA_STORE,
    EventDataStoreSpec,
    EventDataStoreStatus,
)
from trail_operator.crds.integration import INTEGRATION, IntegrationSpec, IntegrationStatus
from trail_operator.crds.trail import TRAIL, TrailSpec, TrailStatus

ALL_KINDS: tuple[KindInfo, ...] = (EVENT_DATA_STORE, TRAIL, INTEGRATION)

__all__ = [
    "ALL_KINDS",
    "CONDITION_READY",
    "EVENT_DATA_STORE",
    "INTEGRATION",
    "TRAIL",
    "Condition",
    "EventDataStoreSpec",
    "EventDataStoreStatus",
    "IntegrationSpec",
    "IntegrationStatus",
    "KindInfo",
    "PrinterColumn",
    "TrailSpec",
    "TrailStatus",
]
