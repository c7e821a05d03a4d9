"""Routing records to stores: remembered decisions are the selectors' own (gateway/routing.py)."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from trail_operator.gateway.routing import build_routes, tables_for
from trail_operator.store.catalog import StoreEntry


def entry(name: str, selectors: list[dict[str, Any]], namespace: str = "trail-system",
          all_namespaces: bool = True) -> StoreEntry:
    return StoreEntry(uid=name, namespace=namespace, name=name, table=f"t_{name}",
                      retention_days=30, all_namespaces=all_namespaces, selectors=selectors)


ENTRIES = [
    entry("history", []),
    entry("data", [{"fieldSelectors": [{"field": "eventCategory", "equals": ["Data"]}]}]),
    entry("team-writes", [{"fieldSelectors": [{"field": "readOnly", "equals": ["false"]}]}],
          namespace="team-a", all_namespaces=False),
    entry("admins", [{"fieldSelectors": [
        {"field": "userIdentity.username", "startsWith": ["admin"]}]}]),
    entry("no-secrets", [{"fieldSelectors": [
        {"field": "resources.type", "notEquals": ["secrets"]},
        {"field": "resources.name", "notStartsWith": ["tmp-"]}]}]),
]

records = st.fixed_dictionaries({
    "eventCategory": st.sampled_from(["Management", "Data", "Insight"]),
    "readOnly": st.booleans(),
    "namespace": st.sampled_from(["", "team-a", "team-b"]),
    "userIdentity": st.fixed_dictionaries({"username": st.sampled_from(
        ["admin", "administrator", "alice", ""])}),
    "resources": st.lists(st.fixed_dictionaries({
        "type": st.sampled_from(["secrets", "pods"]),
        "name": st.sampled_from(["tmp-1", "web", ""])}), max_size=2),
})


@settings(max_examples=300, deadline=None)
@given(batch=st.lists(records, min_size=1, max_size=30))
def test_remembered_routing_equals_every_stores_own_decision(
        batch: list[dict[str, Any]]) -> None:
    routes, problems = build_routes(ENTRIES)
    assert not problems
    for record in batch + batch:  # the second pass is answered from the memo
        expected = tuple(r.entry.table for r in routes.routes if r.accepts(record))
        assert tables_for(routes, record) == expected


def test_a_namespaced_store_gets_only_its_namespace() -> None:
    routes, _ = build_routes(ENTRIES)
    write = {"eventCategory": "Management", "readOnly": False, "resources": []}
    assert "t_team-writes" in tables_for(routes, {**write, "namespace": "team-a"})
    assert "t_team-writes" not in tables_for(routes, {**write, "namespace": "team-b"})


def test_a_value_that_cannot_be_a_key_is_still_routed() -> None:
    routes, _ = build_routes(ENTRIES)
    record = {"eventCategory": "Data", "readOnly": True, "namespace": "",
              "resources": [{"type": "pods", "name": {"not": "a string"}}]}
    assert tables_for(routes, record) == tuple(
        r.entry.table for r in routes.routes if r.accepts(record))
