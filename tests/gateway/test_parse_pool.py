"""Parse workers: the same rows as parsing on the event loop, and nothing lost when one fails."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import orjson
import pytest
import requests

from events.audit_samples import event_list, sample_events
from gateway.gateway_harness import running_gateway
from gateway.test_failure_modes import entry
from gateway.test_failure_modes import event_list as simple_event_list
from trail_operator.events.k8s_audit import AuditEventNormalizer
from trail_operator.gateway.audit_calls import (
    AuditCallError,
    group_by_table,
    parse_audit_call,
    parse_grouped_audit_call,
)
from trail_operator.gateway.parse_pool import ParsePool
from trail_operator.gateway.parse_worker import _send_all, encode_answer, read_answer
from trail_operator.gateway.routing import build_routes
from trail_operator.store.catalog import StoreEntry
from trail_operator.store.client import Store

T = TypeVar("T")

HISTORY = StoreEntry(uid="h", namespace="trail-system", name="history", table="history",
                     retention_days=90, all_namespaces=True)
DATA = StoreEntry(uid="d", namespace="trail-system", name="data", table="data",
                  retention_days=30, all_namespaces=True, selectors=[{
                      "name": "data", "fieldSelectors": [
                          {"field": "eventCategory", "equals": ["Data"]}]}])


def with_pool(test: Callable[[ParsePool], Awaitable[T]], **options: float) -> T:
    async def run() -> T:
        pool = ParsePool(2, "parse-test", "test-1", **options)
        await pool.start()
        try:
            pool.set_entries([HISTORY, DATA])
            return await test(pool)
        finally:
            await pool.close()

    return asyncio.run(run())


def test_workers_give_the_rows_and_rejections_that_parsing_here_gives() -> None:
    events = sample_events()
    events[3]["auditID"] = ""  # refused by its index, the others kept
    bodies = [orjson.dumps(event_list(*events)),
              json.dumps(event_list(*events[:5]), indent=2).encode()]  # pretty-printed
    routes, _ = build_routes([HISTORY, DATA])
    normalizer = AuditEventNormalizer("parse-test", "test-1")
    expected = [parse_grouped_audit_call(normalizer, routes, body) for body in bodies]

    async def parse_all(pool: ParsePool) -> list[Any]:
        return list(await asyncio.gather(*(pool.parse(body) for body in bodies)))

    answers = with_pool(parse_all)
    assert answers == expected
    assert answers[0].rejections
    assert answers[0].rejections[0]["index"] == 3
    assert set(answers[0].rows) == {"history", "data"}
    # Secret values are redacted by the workers as by the reference.
    assert b"aHVudGVyMg==" not in answers[0].rows["history"].joined()


def test_rows_grouped_as_parsed_are_the_rows_parsed_one_by_one() -> None:
    # What workers send (each table's rows encoded in one call) against what the
    # gateway makes itself (a call per row): the same bytes, in the same order.
    events = sample_events()
    events[3]["auditID"] = ""
    routes, _ = build_routes([HISTORY, DATA])
    for body in (orjson.dumps(event_list(*events)),
                 json.dumps(event_list(*events), indent=2).encode()):  # raw line breaks
        parsed = parse_audit_call(AuditEventNormalizer("parse-test", "test-1"), routes, body)
        grouped = parse_grouped_audit_call(
            AuditEventNormalizer("parse-test", "test-1"), routes, body)
        assert grouped.ids == [event_id for event_id, _, _ in parsed.rows]
        assert {table: rows.rows() for table, rows in grouped.rows.items()} == {
            table: rows.rows() for table, rows in group_by_table(parsed.rows).items()}
        assert (grouped.received, grouped.accepted, grouped.rejections) == (
            parsed.received, parsed.accepted, parsed.rejections)
        assert all(len(rows.rows()) == len(rows) for rows in grouped.rows.values())


def test_answers_cross_the_socket_whole_even_when_it_takes_them_in_pieces() -> None:
    routes, _ = build_routes([HISTORY, DATA])
    parsed = parse_grouped_audit_call(AuditEventNormalizer("parse-test", "test-1"), routes,
                                      orjson.dumps(event_list(*sample_events())))
    refused = ("refused", "wrong_kind", "InvalidEventList", "not an EventList")
    answers = [parsed, refused, parsed]

    async def exchange() -> list[Any]:
        ours, theirs = socket.socketpair()
        ours.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)  # partial sends
        reader, writer = await asyncio.open_connection(sock=theirs)
        sender = threading.Thread(target=lambda: [
            _send_all(ours, encode_answer(answer)) for answer in answers])
        sender.start()
        try:
            return [await read_answer(reader) for _ in answers]
        finally:
            sender.join(10)
            ours.close()
            writer.close()

    assert len(parsed.rows["history"].joined()) > 4096
    assert asyncio.run(exchange()) == answers


def test_a_body_a_worker_refuses_whole_raises_the_same_error_as_here() -> None:
    async def parse_bad(pool: ParsePool) -> AuditCallError:
        with pytest.raises(AuditCallError) as refused:
            await pool.parse(b'{"kind": "EventList", "items": [')
        return refused.value

    error = with_pool(parse_bad)
    assert error.code == "MalformedJSON"
    assert "not valid JSON" in str(error)


def test_new_routes_apply_to_the_next_body() -> None:
    body = orjson.dumps(event_list(*sample_events()))

    async def reroute(pool: ParsePool) -> tuple[set[str], set[str]]:
        before = await pool.parse(body)
        pool.set_entries([DATA])
        after = await pool.parse(body)
        assert before is not None
        assert after is not None
        return set(before.rows), set(after.rows)

    assert with_pool(reroute) == ({"history", "data"}, {"data"})


def test_a_killed_worker_is_replaced_and_its_bodies_are_parsed_by_the_gateway() -> None:
    body = orjson.dumps(event_list(*sample_events()))

    async def kill_one(pool: ParsePool) -> tuple[int, list[Any], int]:
        victim = pool.workers[0].process.pid
        os.kill(victim, signal.SIGKILL)
        # Whichever worker it lands on, each body is answered: None for those the
        # dead one held (the gateway then parses them itself).
        answers = list(await asyncio.gather(*(pool.parse(body) for _ in range(6))))
        deadline = time.monotonic() + 20
        while (victim in {worker.process.pid for worker in pool.workers}
               or len(pool.workers) < 2) and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        return victim, answers, len(pool.workers)

    victim, answers, workers = with_pool(kill_one, restart_delay=0.1)
    assert workers == 2
    assert all(answer is None or answer.accepted for answer in answers)
    with pytest.raises(ProcessLookupError):  # reaped, not left a zombie
        os.kill(victim, 0)


def test_a_stuck_worker_is_replaced_after_the_timeout() -> None:
    body = orjson.dumps(event_list(*sample_events()))

    async def stop_one(pool: ParsePool) -> tuple[Any, set[int], set[int]]:
        before = {worker.process.pid for worker in pool.workers}
        stuck = pool.workers[0]
        os.kill(stuck.process.pid, signal.SIGSTOP)
        stuck.load = -1  # the next body goes to it
        answer = await pool.parse(body)
        deadline = time.monotonic() + 20
        while (stuck in pool.workers or len(pool.workers) < 2) and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        return answer, before, {worker.process.pid for worker in pool.workers}

    answer, before, after = with_pool(stop_one, timeout=0.5, restart_delay=0.1)
    assert answer is None  # the gateway parses it itself
    assert len(after) == 2
    assert len(before & after) == 1


def test_workers_end_with_the_pool() -> None:
    async def pids(pool: ParsePool) -> list[int]:
        return [worker.process.pid for worker in pool.workers]

    for pid in with_pool(pids):
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)


def test_events_parsed_by_workers_are_stored_and_a_retry_is_not_stored_twice(
        store: Store) -> None:
    target = entry(store, "parsed-by-workers")
    batch = simple_event_list(50)
    with running_gateway(store, [target], parse_workers=2) as gw:
        assert gw.gateway.parse_pool is not None
        assert len(gw.gateway.parse_pool.workers) == 2
        for _ in range(2):
            answer = requests.post(f"{gw.url}/k8s-audit", json=batch, headers=gw.headers)
            assert answer.status_code == 200, answer.text
            assert answer.json()["accepted"] == 50
    ids = {event["auditID"] for event in batch["items"]}
    stored = store.rows(f"SELECT requestID FROM trail.`{target.table}` FINAL")
    assert {row[0] for row in stored} == ids
    assert store.rows(f"SELECT count() FROM trail.`{target.table}`")[0][0] == 50


def test_without_workers_left_the_gateway_parses_calls_itself(store: Store) -> None:
    target = entry(store, "no-workers-left")
    with running_gateway(store, [target], parse_workers=1) as gw:
        pool = gw.gateway.parse_pool
        assert pool is not None
        pool.restart_delay = 3600  # no replacement during this test
        os.kill(pool.workers[0].process.pid, signal.SIGKILL)
        deadline = time.monotonic() + 20
        while pool.workers and time.monotonic() < deadline:
            time.sleep(0.05)
        answer = requests.post(f"{gw.url}/k8s-audit", json=simple_event_list(7),
                               headers=gw.headers)
        assert answer.status_code == 200, answer.text
    assert store.rows(f"SELECT count() FROM trail.`{target.table}`")[0][0] == 7


def test_a_parse_worker_starts_without_loading_the_clickhouse_driver() -> None:
    # It only parses: the driver would double its memory (~20 MB against ~33).
    loaded = subprocess.run(
        [sys.executable, "-c", "import sys, trail_operator.gateway.parse_worker;"
                               " print('clickhouse_connect' in sys.modules)"],
        capture_output=True, text=True, check=True).stdout.strip()
    assert loaded == "False"
