"""The spool: calls acknowledged from a write-ahead log, inserted behind, nothing lost."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import pytest
import requests

from events.audit_samples import event_list as audit_event_list
from events.audit_samples import sample_events
from gateway.gateway_harness import AUDIT_TOKEN, running_gateway
from gateway.test_failure_modes import entry, event_list
from trail_fixtures import wait_for
from trail_operator.events.k8s_audit import SENSITIVE_KINDS, AuditEventNormalizer
from trail_operator.events.record import RECORD_FIELDS
from trail_operator.gateway.audit_calls import parse_audit_call
from trail_operator.gateway.metrics import GatewayMetrics
from trail_operator.gateway.routing import build_routes
from trail_operator.gateway.spool import MAGIC, Segment, Spool, decode_frames, encode_frame
from trail_operator.gateway.spooled_batcher import SpooledBatcher
from trail_operator.sandbox.controlplane import free_port
from trail_operator.store.catalog import StoreEntry
from trail_operator.store.client import Store
from trail_operator.store.rows import RowChunks, encode_row


def chunked(rows_by_table: dict[str, list[bytes]]) -> dict[str, RowChunks]:
    return {table: RowChunks.of_rows(rows) for table, rows in rows_by_table.items()}


def rows_of(segment: Segment) -> dict[str, list[bytes]]:
    return {table: rows.rows() for table, rows in segment.rows_by_table.items()}


def wait_until(check: Callable[[], Any], timeout: float = 30.0) -> None:
    wait_for("the spool test's condition", check, timeout, interval=0.05)


def test_frames_read_back_as_written_and_a_torn_tail_is_dropped(tmp_path: Path) -> None:
    spool = Spool(tmp_path)
    spool.append(chunked({"a": [b'["1"]', b'["2"]'], "b": [b'["3"]']}))
    spool.append(chunked({"a": [b'["4"]']}))
    spool.close()
    (segment_path,) = tmp_path.glob("*.wal")
    with segment_path.open("ab") as file:  # a crash in the middle of a third append
        file.write(encode_frame(chunked({"a": [b'["5"]']}))[:-3])
    (segment,) = Spool(tmp_path).recover()
    assert rows_of(segment) == {"a": [b'["1"]', b'["2"]', b'["4"]'], "b": [b'["3"]']}


def test_a_failed_append_closes_its_segment_so_later_frames_stay_readable(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    spool = Spool(tmp_path)
    spool.append(chunked({"a": [b'["1"]']}))
    real_write = os.write

    def disk_full(fd: int, data: bytes | memoryview) -> int:
        real_write(fd, bytes(data)[: len(data) // 2])  # half a frame reaches the disk
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "write", disk_full)
    with pytest.raises(OSError, match="No space left"):
        spool.append(chunked({"a": [b'["2"]']}))
    monkeypatch.setattr(os, "write", real_write)
    spool.append(chunked({"a": [b'["3"]']}))
    handed_over = spool.close_segments()
    assert [rows_of(segment) for segment in handed_over] == [
        {"a": [b'["1"]']}, {"a": [b'["3"]']}]
    recovered = Spool(tmp_path).recover()
    assert [rows_of(segment) for segment in recovered] == [
        {"a": [b'["1"]']}, {"a": [b'["3"]']}]


def test_a_damaged_frame_is_not_read_as_rows() -> None:
    frame = bytearray(encode_frame(chunked({"a": [b'["1"]']})))
    frame[-2] ^= 0xFF
    with pytest.raises(ValueError, match="damaged or torn frame at byte 0"):
        list(decode_frames(bytes(frame)))
    assert bytes(frame).startswith(MAGIC)


def test_calls_back_to_back_share_fsyncs_and_a_lone_call_is_appended_at_once(
        store: Store, tmp_path: Path) -> None:
    target = entry(store, "spool-grouped")

    def call(index: int) -> tuple[dict[str, RowChunks], list[str]]:
        event_id = str(uuid.uuid4())
        row = encode_row({"eventID": event_id, "eventTime": "2026-11-26T10:00:00.000Z",
                          "eventName": f"Call{index}"})
        return {target.table: RowChunks.of_rows([row])}, [event_id]

    async def scenario() -> tuple[float, list[dict[str, RowChunks]]]:
        batcher = SpooledBatcher(store, GatewayMetrics(), Spool(tmp_path), linger=3600.0,
                                 idle_seal=3600.0, group_wait=0.05)
        batcher.start()
        try:
            started = time.monotonic()
            await batcher.write(*call(0))  # nothing else in flight: no waiting for company
            alone = time.monotonic() - started
            calls = []
            for index in range(1, 41):  # ~2 ms apart, as 500 calls a second
                calls.append(asyncio.create_task(batcher.write(*call(index))))
                await asyncio.sleep(0.002)
            await asyncio.gather(*calls)
            (segment_path,) = tmp_path.glob("*.wal")  # one frame per fsync
            return alone, list(decode_frames(segment_path.read_bytes()))
        finally:
            await batcher.stop()

    alone, frames = asyncio.run(scenario())
    assert alone < 0.05
    assert sum(len(frame[target.table]) for frame in frames) == 41
    assert len(frames) <= 10  # 41 without grouping
    assert store.rows(f"SELECT count() FROM trail.`{target.table}`")[0][0] == 41  # at stop


def test_spooled_calls_are_answered_before_the_insert_and_stored_after_the_linger(
        store: Store, tmp_path: Path) -> None:
    target = entry(store, "spooled")
    with running_gateway(store, [target], spool_dir=tmp_path, spool_linger=1.0) as gw:
        answer = requests.post(f"{gw.url}/k8s-audit", json=event_list(5), headers=gw.headers)
        assert answer.status_code == 200
        count = f"SELECT count() FROM trail.`{target.table}`"
        assert store.rows(count)[0][0] == 0  # acknowledged from the spool, not yet inserted
        wait_until(lambda: store.rows(count)[0][0] == 5)
        wait_until(lambda: not list(tmp_path.glob("*.wal")))  # stored rows leave the spool


def test_a_pause_of_the_senders_seals_the_spool_once_the_minimum_rows_wait(
        store: Store, tmp_path: Path) -> None:
    target = entry(store, "spool-pause")
    count = f"SELECT count() FROM trail.`{target.table}`"
    with running_gateway(store, [target], spool_dir=tmp_path, spool_linger=3600.0,
                         spool_min_rows=20) as gw:
        def post(events: int) -> None:
            assert requests.post(f"{gw.url}/k8s-audit", json=event_list(events),
                                 headers=gw.headers).status_code == 200

        post(10)
        time.sleep(0.7)  # many pauses of `spool_idle_seal`, but fewer rows than the minimum
        assert store.rows(count)[0][0] == 0
        post(10)
        post(10)
        # Inserted after the pause that follows, not after the hour-long linger.
        wait_until(lambda: store.rows(count)[0][0] == 30, timeout=10)


def test_a_busy_segment_gathers_past_the_linger_and_a_light_one_is_sealed_at_it(
        store: Store, tmp_path: Path) -> None:
    target = entry(store, "spool-busy")
    count = f"SELECT count() FROM trail.`{target.table}`"
    # Pauses never seal here (the minimum is out of reach): only the lingers do.
    with running_gateway(store, [target], spool_dir=tmp_path, spool_linger=0.2,
                         spool_max_linger=4.0, spool_busy_rows=20,
                         spool_min_rows=1_000) as gw:
        def post(events: int) -> None:
            assert requests.post(f"{gw.url}/k8s-audit", json=event_list(events),
                                 headers=gw.headers).status_code == 200

        post(5)  # fewer than the busy rows: stored after the 0.2 s linger
        wait_until(lambda: store.rows(count)[0][0] == 5, timeout=2.5)
        post(30)  # busy: the segment stays open past the linger...
        time.sleep(1.0)
        assert store.rows(count)[0][0] == 5
        # ...until the longer linger, 4 s after its first rows.
        wait_until(lambda: store.rows(count)[0][0] == 35, timeout=10)


def test_store_failure_turns_calls_away_with_503_and_spooled_rows_are_stored_once_back(
        store: Store, tmp_path: Path) -> None:
    target = entry(store, "spool-comeback")
    first = event_list(4)
    count = f"SELECT count() FROM trail.`{target.table}`"
    with running_gateway(store, [target], spool_dir=tmp_path, spool_linger=0.05) as gw:
        gw.gateway.batcher.retry_seconds = 0.2  # type: ignore[union-attr]
        store.command(f"RENAME TABLE trail.`{target.table}` TO trail.`{target.table}_away`")
        try:
            spooled = requests.post(f"{gw.url}/k8s-audit", json=first, headers=gw.headers)
            assert spooled.status_code == 200  # durable in the spool
            wait_until(lambda: requests.get(f"{gw.url}/readyz").status_code == 503)
            refused = requests.post(f"{gw.url}/k8s-audit", json=event_list(2),
                                    headers=gw.headers)
            assert refused.status_code == 503
            assert refused.headers["Retry-After"] == "1"
            assert target.table in refused.json()["message"]
        finally:
            store.command(f"RENAME TABLE trail.`{target.table}_away` TO trail.`{target.table}`")
        wait_until(lambda: requests.get(f"{gw.url}/readyz").status_code == 200)
        wait_until(lambda: store.rows(count)[0][0] == 4)
        again = requests.post(f"{gw.url}/k8s-audit", json=first, headers=gw.headers)
        assert again.status_code == 200  # a retry of acknowledged events is not stored twice
    assert store.rows(count)[0][0] == 4


def test_a_failing_store_table_does_not_hold_back_the_rows_of_the_others(
        store: Store, tmp_path: Path) -> None:
    broken, healthy = entry(store, "spool-broken"), entry(store, "spool-healthy")
    with running_gateway(store, [broken, healthy], spool_dir=tmp_path,
                         spool_linger=0.05) as gw:
        gw.gateway.batcher.retry_seconds = 0.2  # type: ignore[union-attr]
        store.command(f"RENAME TABLE trail.`{broken.table}` TO trail.`{broken.table}_away`")
        try:
            assert requests.post(f"{gw.url}/k8s-audit", json=event_list(3),
                                 headers=gw.headers).status_code == 200
            # The same segment's rows for the healthy store are stored meanwhile.
            wait_until(lambda: store.rows(
                f"SELECT count() FROM trail.`{healthy.table}`")[0][0] == 3)
            wait_until(lambda: broken.table in requests.get(f"{gw.url}/readyz").text)
        finally:
            store.command(f"RENAME TABLE trail.`{broken.table}_away` TO trail.`{broken.table}`")
        wait_until(lambda: store.rows(f"SELECT count() FROM trail.`{broken.table}`")[0][0] == 3)
        wait_until(lambda: requests.get(f"{gw.url}/readyz").status_code == 200)
        wait_until(lambda: not list(tmp_path.glob("*.wal")))  # all its tables are stored


def test_rows_spooled_for_a_store_deleted_meanwhile_are_dropped_and_ingest_goes_on(
        store: Store, tmp_path: Path) -> None:
    doomed, other = entry(store, "spool-doomed"), entry(store, "spool-other")
    with running_gateway(store, [doomed], spool_dir=tmp_path, spool_linger=1.0) as gw:
        assert requests.post(f"{gw.url}/k8s-audit", json=event_list(3),
                             headers=gw.headers).status_code == 200
        # The store is deleted before the spooled rows reach it.
        gw.gateway.set_entries([other])
        store.command(f"DROP TABLE trail.`{doomed.table}` SYNC")
        wait_until(lambda: gw.gateway.batcher.pending_rows == 0)
        metrics = requests.get(f"{gw.url}/metrics").text
        assert f'trail_gateway_insert_failures_total{{store="{doomed.table}"}} 1.0' in metrics
        assert gw.gateway.batcher.failure is None
        assert requests.get(f"{gw.url}/readyz").status_code == 200
        assert requests.post(f"{gw.url}/k8s-audit", json=event_list(2),
                             headers=gw.headers).status_code == 200
        wait_until(lambda: store.rows(f"SELECT count() FROM trail.`{other.table}`")[0][0] == 2)


def test_a_spooled_row_the_store_refuses_is_set_aside_and_ingest_goes_on(
        store: Store, tmp_path: Path) -> None:
    target = entry(store, "spool-refused")
    good = [encode_row({"eventID": str(uuid.uuid4()), "eventTime": "2026-11-26T10:00:00.000Z",
                        "eventName": "GetPod"}) for _ in range(4)]
    bad = encode_row({"eventID": str(uuid.uuid4()), "eventTime": "the day before yesterday",
                      "eventName": "GetPod"})
    # Rows a crashed earlier gateway spooled; one of them the engine cannot read.
    Spool(tmp_path).append(chunked({target.table: [good[0], bad, *good[1:]]}))
    count = f"SELECT count() FROM trail.`{target.table}`"
    with running_gateway(store, [target], spool_dir=tmp_path, spool_linger=0.05) as gw:
        wait_until(lambda: store.rows(count)[0][0] == 4)
        wait_until(lambda: gw.gateway.batcher.pending_rows == 0)
        assert gw.gateway.batcher.failure is None
        assert requests.get(f"{gw.url}/readyz").status_code == 200
        metrics = requests.get(f"{gw.url}/metrics").text
        assert (f'trail_gateway_rows_refused_by_store_total{{store="{target.table}"}} 1.0'
                in metrics)
        assert requests.post(f"{gw.url}/k8s-audit", json=event_list(2),
                             headers=gw.headers).status_code == 200
        wait_until(lambda: store.rows(count)[0][0] == 6)
    (kept,) = [orjson.loads(line) for line in
               (tmp_path / "refused" / f"{target.table}.jsonl").read_bytes().splitlines()]
    assert kept["row"] == bad.decode()
    assert kept["table"] == target.table
    assert "eventTime" in kept["reason"]
    assert not list(tmp_path.glob("*.wal"))  # the segment is done with


def test_a_spool_backlog_past_the_limit_is_refused_with_429(store: Store, tmp_path: Path) -> None:
    target = entry(store, "spool-overload")
    with running_gateway(store, [target], spool_dir=tmp_path, spool_linger=30.0,
                         max_pending_rows=50) as gw:
        assert requests.post(f"{gw.url}/k8s-audit", json=event_list(40),
                             headers=gw.headers).status_code == 200
        answer = requests.post(f"{gw.url}/k8s-audit", json=event_list(40), headers=gw.headers)
        assert answer.status_code == 429
        assert "retry later" in answer.json()["message"]
    # Stopping the gateway inserts what the spool holds.
    assert store.rows(f"SELECT count() FROM trail.`{target.table}`")[0][0] == 40


# A gateway killed with SIGKILL runs in its own process, on its own chDB path
# (chDB serves one path per process), so setup and counting run in children too.
_CHILD = textwrap.dedent("""
    import sys
    from trail_operator.store.catalog import StoreEntry, ensure_catalog, upsert_entry
    from trail_operator.store.client import Store
    from trail_operator.store.ddl import TableSpec
    from trail_operator.store.tables import ensure_table
    store = Store(sys.argv[2], "trail")
    if sys.argv[1] == "setup":
        ensure_catalog(store)
        ensure_table(store, TableSpec("trail", "crash_all", 30))
        upsert_entry(store, StoreEntry(uid="crash", namespace="trail-system", name="crash",
                     table="crash_all", retention_days=30, all_namespaces=True))
    else:
        print(store.rows("SELECT count(), uniqExact(eventID) FROM trail.crash_all")[0])
""")


def _child(*args: str) -> str:
    return subprocess.run([sys.executable, "-c", _CHILD, *args], check=True,
                          capture_output=True, text=True).stdout.strip()


def _start_gateway(dsn: str, spool: Path, port: int, linger: float) -> subprocess.Popen[bytes]:
    env = {**os.environ, "TRAIL_STORE_DSN": dsn, "TRAIL_GATEWAY_PORT": str(port),
           "TRAIL_GATEWAY_AUDIT_TOKEN": AUDIT_TOKEN, "TRAIL_GATEWAY_SPOOL_DIR": str(spool),
           "TRAIL_GATEWAY_SPOOL_LINGER": str(linger), "KUBECONFIG": "/nonexistent"}
    gateway = subprocess.Popen([sys.executable, "-m", "trail_operator.cli.main", "gateway"],
                               env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}/readyz"

    def ready() -> bool:
        try:
            return requests.get(url, timeout=1).status_code == 200
        except requests.ConnectionError:
            return False

    wait_until(ready, timeout=60)
    return gateway


def test_acknowledged_events_survive_a_gateway_killed_before_their_insert(
        tmp_path: Path) -> None:
    dsn, spool, port = f"chdb://{tmp_path}/ch", tmp_path / "spool", free_port()
    _child("setup", dsn)
    headers = {"Authorization": f"Bearer {AUDIT_TOKEN}"}
    gateway = _start_gateway(dsn, spool, port, linger=3600)
    try:
        for _ in range(3):
            answer = requests.post(f"http://127.0.0.1:{port}/k8s-audit",
                                   data=orjson.dumps(event_list(10)), headers=headers)
            assert answer.status_code == 200
    finally:
        gateway.send_signal(signal.SIGKILL)
        gateway.wait(30)
    assert list(spool.glob("*.wal"))
    # The next start replays the spool into the store, then stops cleanly.
    gateway = _start_gateway(dsn, spool, port, linger=0.05)
    wait_until(lambda: not list(spool.glob("*.wal")))
    gateway.send_signal(signal.SIGTERM)
    gateway.wait(30)
    assert _child("count", dsn) == "(30, 30)"


def test_rows_of_a_pretty_printed_body_come_back_whole_from_the_spool(tmp_path: Path) -> None:
    # A sender may indent its JSON; the bodies kept as they came then hold line
    # breaks, and rows travel joined by newlines (spool frames, INSERTs).
    events = [event for event in sample_events() if event.get("requestObject")
              and (event.get("objectRef") or {}).get("resource") != "secrets"
              and event["requestObject"].get("kind") not in SENSITIVE_KINDS]  # redacted
    body = json.dumps(audit_event_list(*events), indent=2).encode()
    entries = [StoreEntry(uid="all", namespace="trail-system", name="all", table="all",
                          retention_days=30, all_namespaces=True)]
    parsed = parse_audit_call(AuditEventNormalizer("spool-test", "test-1"),
                              build_routes(entries)[0], body)
    rows = [data for _, data, _ in parsed.rows]
    assert len(rows) == len(events)
    assert not any(b"\n" in row for row in rows)
    spool = Spool(tmp_path)
    spool.append(chunked({"all": rows}))
    spool.close()
    (segment,) = Spool(tmp_path).recover()
    assert rows_of(segment) == {"all": rows}
    position = RECORD_FIELDS.index("requestParameters")
    assert [orjson.loads(row)[position] for row in rows] == [
        event["requestObject"] for event in events]
