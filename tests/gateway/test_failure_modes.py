"""When the store is down or slow, senders are told to retry and nothing acknowledged is lost."""

from __future__ import annotations

import threading
import time
import uuid
from typing import Any

import requests

from gateway.gateway_harness import running_gateway
from trail_operator.sandbox.controlplane import free_port
from trail_operator.store.catalog import StoreEntry, ensure_catalog
from trail_operator.store.client import Store
from trail_operator.store.ddl import TableSpec
from trail_operator.store.naming import table_name_for
from trail_operator.store.tables import ensure_table

ALL = [{"name": "all", "fieldSelectors": [
    {"field": "eventCategory", "equals": ["Management", "Data"]}]}]


def entry(store: Store, name: str) -> StoreEntry:
    table = table_name_for("harness", name)
    ensure_catalog(store)
    ensure_table(store, TableSpec(store.database, table, 30))
    return StoreEntry(uid=name, namespace="harness", name=name, table=table, retention_days=30,
                      all_namespaces=True, selectors=ALL)


def event_list(count: int) -> dict[str, Any]:
    now = time.strftime("%Y-%m-%dT%H:%M:%S.000000Z", time.gmtime())
    return {"kind": "EventList", "apiVersion": "audit.k8s.io/v1", "items": [{
        "auditID": str(uuid.uuid4()), "stage": "ResponseComplete", "verb": "get",
        "requestURI": "/api/v1/namespaces/a/pods/p", "level": "Metadata",
        "user": {"username": "u"}, "sourceIPs": ["127.0.0.1"],
        "objectRef": {"resource": "pods", "namespace": "a", "name": "p", "apiVersion": "v1"},
        "responseStatus": {"code": 200},
        "requestReceivedTimestamp": now, "stageTimestamp": now,
    } for _ in range(count)]}


def test_store_down_answers_503_with_retry_after() -> None:
    down = Store(f"http://127.0.0.1:{free_port()}", "trail")
    table = table_name_for("harness", "down")
    unreachable = StoreEntry(uid="down", namespace="harness", name="down", table=table,
                             retention_days=30, all_namespaces=True, selectors=ALL)
    with running_gateway(down, [unreachable]) as gw:
        answer = requests.post(f"{gw.url}/k8s-audit", json=event_list(3), headers=gw.headers)
        assert answer.status_code == 503
        assert answer.headers["Retry-After"] == "1"
        assert table in answer.json()["message"]
        assert requests.get(f"{gw.url}/readyz").status_code == 503


def test_store_that_comes_back_gets_the_retried_batch_once(store: Store) -> None:
    good = entry(store, "comeback")
    batch = event_list(4)
    with running_gateway(store, [good]) as gw:
        # Make the table unusable, as if the server were down, then bring it back.
        store.command(f"RENAME TABLE trail.`{good.table}` TO trail.`{good.table}_away`")
        try:
            failed = requests.post(f"{gw.url}/k8s-audit", json=batch, headers=gw.headers)
            assert failed.status_code == 503
        finally:
            store.command(f"RENAME TABLE trail.`{good.table}_away` TO trail.`{good.table}`")
        for _ in range(2):
            ok = requests.post(f"{gw.url}/k8s-audit", json=batch, headers=gw.headers)
            assert ok.status_code == 200
    assert store.rows(f"SELECT count() FROM trail.`{good.table}`")[0][0] == 4


def test_overload_pushes_back_with_429_instead_of_growing_memory(store: Store) -> None:
    target = entry(store, "overload")
    with running_gateway(store, [target], max_pending_rows=50, batch_linger=1.0) as gw:
        results: list[int] = []

        def post() -> None:
            answer = requests.post(f"{gw.url}/k8s-audit", json=event_list(40),
                                   headers=gw.headers)
            results.append(answer.status_code)

        threads = [threading.Thread(target=post) for _ in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
        assert 429 in results
        assert 200 in results
        assert gw.gateway.batcher.pending_rows == 0
    accepted = results.count(200) * 40
    assert store.rows(f"SELECT count() FROM trail.`{target.table}`")[0][0] == accepted
