"""Status conditions keep their transition time unless their status changes."""

from __future__ import annotations

from trail_operator.operator.conditions import set_condition


def test_transition_time_is_kept_while_status_is_unchanged() -> None:
    first = set_condition(None, "Ready", True, "TableReady", "ok", 1)
    first[0]["lastTransitionTime"] = "2020-01-01T00:00:00Z"
    again = set_condition(first, "Ready", True, "TableReady", "still ok", 2)
    assert again[0]["lastTransitionTime"] == "2020-01-01T00:00:00Z"
    assert again[0]["message"] == "still ok"
    assert again[0]["observedGeneration"] == 2


def test_transition_time_moves_when_status_flips() -> None:
    first = set_condition(None, "Ready", True, "TableReady", "ok")
    first[0]["lastTransitionTime"] = "2020-01-01T00:00:00Z"
    flipped = set_condition(first, "Ready", False, "StoreUnreachable", "down")
    assert flipped[0]["status"] == "False"
    assert flipped[0]["lastTransitionTime"] != "2020-01-01T00:00:00Z"


def test_other_conditions_are_left_alone() -> None:
    conditions = [{"type": "Synced", "status": "True", "reason": "x", "message": "",
                   "lastTransitionTime": "2020-01-01T00:00:00Z"}]
    updated = set_condition(conditions, "Ready", False, "DDLRefused", "bad")
    assert [c["type"] for c in updated] == ["Synced", "Ready"]
