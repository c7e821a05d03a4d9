"""Kubernetes-style status conditions, updated without losing transition times.

`lastTransitionTime` must change only when a condition's status changes, or
every periodic refresh would look like a transition to anyone watching.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

Condition = dict[str, Any]


def now_rfc3339() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def set_condition(
    conditions: Sequence[Condition] | None,
    type_: str,
    status: bool,
    reason: str,
    message: str,
    observed_generation: int | None = None,
) -> list[Condition]:
    """Return `conditions` with `type_` set; other conditions are kept as they are."""
    wanted = "True" if status else "False"
    result: list[Condition] = []
    previous: Condition | None = None
    for condition in conditions or ():
        if condition.get("type") == type_:
            previous = condition
        else:
            result.append(dict(condition))
    changed = previous is None or previous.get("status") != wanted
    updated: Condition = {
        "type": type_,
        "status": wanted,
        "reason": reason,
        "message": message,
        "lastTransitionTime": now_rfc3339() if changed or previous is None
        else previous.get("lastTransitionTime", now_rfc3339()),
    }
    if observed_generation is not None:
        updated["observedGeneration"] = observed_generation
    result.append(updated)
    return result


def condition_status(conditions: Sequence[Condition] | None, type_: str) -> str | None:
    for condition in conditions or ():
        if condition.get("type") == type_:
            return str(condition.get("status"))
    return None
