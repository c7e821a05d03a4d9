"""Ingest throughput and latency of one gateway process, against the engine's own insert limit.

Issue 3's figures, measured in one run on the same engine:
  (a) end-to-end events/s: EventLists of 100 and of 1000 posted over HTTP to one
      gateway process (`trailctl gateway`, spool on as in the sandbox, with its
      default parse workers: child processes that it starts and that end with it,
      whose CPU is counted as the gateway's; TRAIL_GATEWAY_PARSE_WORKERS=0 runs it
      without), routed to 3 stores with different selectors, 500,000 events each.
      The clock stops when every row is stored (the gateway's queue is empty), not
      when the last call is acknowledged from the spool. A sustained rate: storing
      the last rows after the last answer takes ~0.4 s whatever the run's length
      (the senders' pause is noticed, then one insert), which was 13-20% of a run of
      100,000 events; and runs this long pay for the merges of their own parts,
      which shorter ones never reached;
  (b) the store's own limit: the same routed records inserted straight into the same
      engine with INSERT ... FORMAT JSONEachRow, in batches of 30,000 rows a table.
      Each (a) phase is compared with the mean of two (b) phases of its own events,
      run just before and just after it: the shared machine's speed drifts by half
      over minutes (a lone (b) before (a) put a/b anywhere in 0.41-0.63 for the same
      code). (b) has engine data paths of its own, so the merges of (a)'s parts do
      not run in its time;
  (c) latency from POST to the record being queryable at a steady 1,000 events/s,
      p50 and p99: a gateway in a child process next to a poller that queries the
      store for the last event of each call every 10 ms (the poll interval and the
      poller's own queries are included), and the acknowledgement time senders see.
Goals: (a) >= 30,000 events/s and >= half of (b); (c) p99 < 2 s.

Also printed, to read the figures by: the gateway's CPU per event by kind of thread
(event loop, Python threads, parse worker processes, the engine's inserts and merges),
and the parse path's time per event in this idle process, which moves with the shared
machine's speed.

The gateway runs in its own process (chDB allows one process per data path), so the
phases that touch the store directly run in short-lived child processes.
"""

from __future__ import annotations

import argparse
import asyncio
import copy
import functools
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import aiohttp
import orjson

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "tests"))

from events.audit_samples import sample_events  # noqa: E402
from sandbox_harness import report  # noqa: E402
from trail_operator.events.k8s_audit import AuditEventNormalizer  # noqa: E402
from trail_operator.gateway.routing import build_routes, tables_for  # noqa: E402
from trail_operator.sandbox.controlplane import free_port  # noqa: E402
from trail_operator.store.catalog import StoreEntry  # noqa: E402

TOKEN = "bench-audit-token"
NAMESPACES = [f"team-{i}" for i in range(10)]
READS = {"get", "list", "watch"}


def store_entries(suffix: str = "") -> list[StoreEntry]:
    return [
        StoreEntry(uid=f"history{suffix}", namespace="trail-system", name=f"history{suffix}",
                   table=f"bench_history{suffix}", retention_days=90, all_namespaces=True),
        StoreEntry(uid=f"data{suffix}", namespace="trail-system", name=f"data{suffix}",
                   table=f"bench_data{suffix}", retention_days=30, all_namespaces=True,
                   selectors=[{"name": "data", "fieldSelectors": [
                       {"field": "eventCategory", "equals": ["Data"]}]}]),
        StoreEntry(uid=f"writes{suffix}", namespace="team-0", name=f"writes{suffix}",
                   table=f"bench_writes{suffix}", retention_days=30,
                   selectors=[{"name": "writes", "fieldSelectors": [
                       {"field": "readOnly", "equals": ["false"]}]}]),
    ]


def realistic_events(count: int, first: int = 0) -> list[dict[str, Any]]:
    """Captured shapes, at the levels the shipped policy logs them, with fresh IDs:
    events number `first` to `first + count - 1` of a run."""
    shapes = _shapes()
    now = time.strftime("%Y-%m-%dT%H:%M:%S.", time.gmtime())
    events = []
    for index in range(first, first + count):
        event = copy.copy(shapes[index % len(shapes)])
        event["auditID"] = str(uuid.uuid4())
        event["requestReceivedTimestamp"] = event["stageTimestamp"] = \
            f"{now}{index % 1_000_000:06d}Z"
        ref = event.get("objectRef")
        if ref and ref.get("namespace"):
            event["objectRef"] = {**ref, "namespace": NAMESPACES[index % len(NAMESPACES)]}
        events.append(event)
    return events


@functools.cache
def _shapes() -> list[dict[str, Any]]:
    shapes = []
    for event in sample_events():
        if event.get("stage") not in ("ResponseComplete", "Panic"):
            continue
        shaped = copy.deepcopy(event)
        shaped.pop("responseObject", None)
        if shaped.get("verb") in READS or (shaped.get("objectRef") or {}).get(
                "resource") in ("secrets", "configmaps"):
            shaped.pop("requestObject", None)
            shaped["level"] = "Metadata"
        shapes.append(shaped)
    return shapes


def event_lists(events: list[dict[str, Any]], size: int) -> list[bytes]:
    return [
        orjson.dumps({"kind": "EventList", "apiVersion": "audit.k8s.io/v1",
                      "items": events[i:i + size]})
        for i in range(0, len(events), size)
    ]


def event_list_bodies(count: int, size: int, first: int = 0) -> list[bytes]:
    """EventList bodies of `size` events for events `first` on, made a body at a time:
    only the bodies are kept, never a million events as dicts."""
    return [body for start in range(first, first + count, size)
            for body in event_lists(realistic_events(min(size, first + count - start), start),
                                    size)]


# (b)'s inserts: as large as they get while their parts stay compact (these rows
# are ~740 bytes in the engine, and parts under 32 MiB are compact). A 60,000-row
# insert of them made a wide part and took ~10% more CPU per row than two of
# 30,000, so (b) does not take the gateway's segment size: a/b is not flattered.
DIRECT_BATCH_ROWS = 30_000


# -- child phases (own the chDB path while they run) -------------------------------

def phase_setup(dsn: str) -> None:
    from trail_operator.store.catalog import ensure_catalog, upsert_entry
    from trail_operator.store.client import Store
    from trail_operator.store.ddl import TableSpec
    from trail_operator.store.tables import ensure_table

    store = Store(dsn, "trail")
    ensure_catalog(store)
    for entry in store_entries():
        ensure_table(store, TableSpec("trail", entry.table, entry.retention_days))
        upsert_entry(store, entry)


def phase_direct(dsn: str, count: int, first: int) -> None:
    """(b) for events `first` to `first + count - 1`: route and serialize before the
    clock starts, then time only the inserts."""
    from trail_operator.store.client import Store
    from trail_operator.store.ddl import TableSpec
    from trail_operator.store.tables import ensure_table

    normalizer = AuditEventNormalizer("bench", "bench-1")
    routes, _ = build_routes(store_entries("_direct"))
    batch = DIRECT_BATCH_ROWS
    pending: dict[str, list[bytes]] = {}
    chunks: list[tuple[str, bytes]] = []
    for body in event_list_bodies(count, 1000, first):
        records, _ = normalizer.normalize_list(orjson.loads(body))
        for record in records:
            data = orjson.dumps(record)
            for table in tables_for(routes, record):
                lines = pending.setdefault(table, [])
                lines.append(data)
                if len(lines) == batch:
                    # Joined as they fill: orjson's results keep ~8 KB each, so a
                    # million rows kept apart took ~9 GB.
                    chunks.append((table, b"\n".join(lines)))
                    lines.clear()
    chunks += [(table, b"\n".join(lines)) for table, lines in pending.items() if lines]
    store = Store(dsn, "trail")
    for entry in store_entries("_direct"):
        ensure_table(store, TableSpec("trail", entry.table, entry.retention_days))
    start = time.perf_counter()
    for table, chunk in chunks:
        store.insert_json_each_row(table, chunk)
    elapsed = time.perf_counter() - start
    counts = {entry.table: store.rows(f"SELECT count() FROM trail.`{entry.table}`")[0][0]
              for entry in store_entries("_direct")}
    print(orjson.dumps({"events": count, "seconds": elapsed, "counts": counts}).decode())


def phase_count(dsn: str) -> None:
    from trail_operator.store.client import Store

    store = Store(dsn, "trail")
    counts = {e.table: store.rows(f"SELECT count() FROM trail.`{e.table}`")[0][0]
              for e in store_entries()}
    print(orjson.dumps(counts).decode())


def child(phase: str, dsn: str, *extra: str) -> str:
    result = subprocess.run([sys.executable, __file__, "--phase", phase, "--dsn", dsn, *extra],
                            check=True, capture_output=True, text=True)
    return result.stdout.strip().splitlines()[-1] if result.stdout.strip() else ""


# -- the load generator --------------------------------------------------------------

async def post_all(url: str, bodies: list[bytes], concurrency: int) -> tuple[float, float]:
    """Seconds from the first POST until the last answer, and until every row is
    stored (the queue is empty).

    The senders write ready-made HTTP/1.1 requests on keep-alive connections and
    read each answer by its Content-Length: the load generator shares the
    gateway's cores, and aiohttp's client used 2.4-3.1 us of CPU per event where
    this uses 1.6-2.2 (most of it the kernel's loopback TCP).
    """
    host, port = url.removeprefix("http://").rsplit(":", 1)
    head = (f"POST /k8s-audit HTTP/1.1\r\nHost: {host}:{port}\r\n"
            f"Authorization: Bearer {TOKEN}\r\nContent-Type: application/json\r\n")
    requests = [f"{head}Content-Length: {len(body)}\r\n\r\n".encode() + body for body in bodies]
    requests.reverse()  # popped from the end: posted in order

    async def sender() -> None:
        reader, writer = await asyncio.open_connection(host, int(port))
        try:
            while requests:
                request = requests.pop()
                while True:
                    writer.write(request)
                    status = await _read_answer(reader)
                    if status == 200:
                        break
                    if status not in (429, 503):
                        raise RuntimeError(f"gateway answered {status}")
                    await asyncio.sleep(0.05)
        finally:
            writer.close()

    start = time.perf_counter()
    await asyncio.gather(*(sender() for _ in range(concurrency)))
    answered = time.perf_counter() - start
    async with aiohttp.ClientSession() as session:
        while await queued_rows(session, url):
            await asyncio.sleep(0.01)
    return answered, time.perf_counter() - start


async def _read_answer(reader: asyncio.StreamReader) -> int:
    """The status of one HTTP/1.1 answer, its body read and dropped."""
    header = await reader.readuntil(b"\r\n\r\n")
    status = int(header[9:12])
    marker = header.lower().find(b"content-length:")
    if marker < 0:
        raise RuntimeError(f"gateway answered without a Content-Length: {header[:200]!r}")
    length = int(header[marker + 15:header.index(b"\r\n", marker)])
    await reader.readexactly(length)
    return status


async def queued_rows(session: aiohttp.ClientSession, url: str) -> float:
    async with session.get(f"{url}/metrics") as answer:
        text = await answer.text()
    for line in text.splitlines():
        if line.startswith("trail_gateway_queue_rows "):
            return float(line.split()[1])
    raise RuntimeError("the gateway reports no trail_gateway_queue_rows")


def phase_latency(dsn: str, spool: str, per_second: int, batch: int, seconds: int) -> None:
    """(c): a gateway in this process's background thread, posted to at a steady rate,
    and a poller that reports when the last event of each call is queryable."""
    import threading

    from trail_operator.cli.processes import run_gateway
    from trail_operator.config import Settings
    from trail_operator.gateway.config import GatewayConfig
    from trail_operator.store.client import Store

    settings = Settings(cluster_name="bench", region="bench-1", store_dsn=dsn)
    config = GatewayConfig(port=free_port(), audit_token=TOKEN, spool_dir=Path(spool))
    stop, ready = threading.Event(), threading.Event()
    server = threading.Thread(target=lambda: asyncio.run(run_gateway(
        settings, config, Store(dsn, "trail"), stop_flag=stop, ready_flag=ready)), daemon=True)
    server.start()
    if not ready.wait(60):
        raise RuntimeError("latency gateway not ready")
    poller = Store(dsn, "trail")
    routes, _ = build_routes(store_entries())
    normalizer = AuditEventNormalizer("bench", "bench-1")
    events = realistic_events(per_second * seconds)
    calls = []
    for body in event_lists(events, batch):
        records, _ = normalizer.normalize_list(orjson.loads(body))
        probe = next(r for r in reversed(records) if tables_for(routes, r))
        calls.append((body, tables_for(routes, probe)[0], probe["eventID"]))
    try:
        queryable, acknowledged = asyncio.run(
            steady_latency(f"http://127.0.0.1:{config.port}", calls, poller, batch / per_second))
    finally:
        stop.set()
        server.join(60)
    print(orjson.dumps({"queryable": queryable, "acknowledged": acknowledged}).decode())


async def steady_latency(url: str, calls: list[tuple[bytes, str, str]], poller: Any,
                         interval: float) -> tuple[list[float], list[float]]:
    """Post one EventList every `interval` seconds; time its acknowledgement, and the
    moment its last event is found in the store."""
    headers = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}
    queryable: list[float] = []
    acknowledged: list[float] = []
    async with aiohttp.ClientSession() as session:

        async def one(body: bytes, table: str, event_id: str) -> None:
            start = time.perf_counter()
            async with session.post(f"{url}/k8s-audit", data=body, headers=headers) as answer:
                reply = await answer.read()
                if answer.status != 200:
                    raise RuntimeError(f"gateway answered {answer.status}: {reply[:300]!r}")
            acknowledged.append(time.perf_counter() - start)
            sql = f"SELECT count() FROM trail.`{table}` WHERE eventID = {{id:UUID}}"
            while not (await asyncio.to_thread(poller.rows, sql, {"id": event_id}))[0][0]:
                await asyncio.sleep(0.01)
            queryable.append(time.perf_counter() - start)

        tasks = []
        begin = time.perf_counter()
        for index, (body, table, event_id) in enumerate(calls):
            delay = begin + index * interval - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(one(body, table, event_id)))
        await asyncio.gather(*tasks)
    return queryable, acknowledged


# ClickHouse names its threads; what they do, for the CPU split of the gateway.
THREAD_KINDS = {"ThreadPool": "engine_insert", "MergeMutate": "engine_merges"}


def thread_cpu(pid: int) -> dict[str, float]:
    """CPU seconds each kind of thread of a process has used so far (Linux /proc):
    the event loop (the main thread), Python workers (spool writes, INSERT calls;
    the engine runs part of an INSERT in the calling thread), the engine's own, and
    the process's children (its parse workers)."""
    # The process's own counters also keep the CPU of threads that have ended.
    workers = sum(_child_cpu(child) for child in child_pids(pid))
    kinds = {"total": process_cpu(pid) + workers, "parse_workers": workers}
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            name, seconds = _stat_cpu(f"/proc/{pid}/task/{tid}/stat")
        except OSError:  # the thread ended
            continue
        name = name.rstrip("0123456789")
        kind = ("event_loop" if tid == str(pid) else "python_workers" if name == "python"
                else THREAD_KINDS.get(name, "engine_other"))
        kinds[kind] = kinds.get(kind, 0.0) + seconds
    return kinds


def _child_cpu(pid: int) -> float:
    try:
        return process_cpu(pid)
    except OSError:  # it ended meanwhile
        return 0.0


def child_pids(pid: int) -> list[int]:
    """The live child processes of a process, whichever of its threads started them."""
    children = []
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{tid}/children") as listing:
                children += [int(child) for child in listing.read().split()]
        except OSError:  # the thread ended
            continue
    return children


def _stat_cpu(path: str) -> tuple[str, float]:
    """The name and the CPU seconds (user + system) in a /proc stat file."""
    with open(path) as stat:
        raw = stat.read()
    fields = raw[raw.rindex(")") + 2:].split()
    seconds = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return raw[raw.index("(") + 1:raw.rindex(")")], seconds


def process_cpu(pid: int) -> float:
    """CPU seconds a process has used so far, its ended threads included."""
    return _stat_cpu(f"/proc/{pid}/stat")[1]


def machine_cpu() -> tuple[float, float]:
    """(busy, all) CPU seconds of the whole machine so far, from /proc/stat."""
    with open("/proc/stat") as stat:
        fields = [int(v) for v in stat.readline().split()[1:8]]
    ticks = os.sysconf("SC_CLK_TCK")
    idle = fields[3] + fields[4]  # idle and iowait
    return (sum(fields) - idle) / ticks, sum(fields) / ticks


def profiled_pid(spy: int) -> int:
    """The gateway's pid when it runs under py-spy (its only child)."""
    with open(f"/proc/{spy}/task/{spy}/children") as children:
        return int(children.read().split()[0])


def cpu_per_event(before: dict[str, float], after: dict[str, float],
                  events: int) -> dict[str, float]:
    """Microseconds of CPU per event, in all and by kind of thread."""
    return {kind: (after[kind] - before.get(kind, 0.0)) / events * 1e6 for kind in after}


def isolated_parse_us(bodies: list[bytes], rounds: int = 3) -> float:
    """Microseconds per event for the parse workers' path (decode, normalize, route,
    encode) in this idle process, best of `rounds`: how fast the machine is right now,
    so runs made in its fast and slow phases can be told apart."""
    from trail_operator.gateway.audit_calls import parse_grouped_audit_call

    normalizer = AuditEventNormalizer("bench", "bench-1")
    routes, _ = build_routes(store_entries())
    events = 0
    best = float("inf")
    for _ in range(rounds):
        start = time.perf_counter()
        events = sum(parse_grouped_audit_call(normalizer, routes, body).received
                     for body in bodies)
        best = min(best, time.perf_counter() - start)
    return best / events * 1e6


def wait_ready(url: str, timeout: float = 60) -> None:
    import urllib.request

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"{url}/readyz", timeout=2) as answer:
                if answer.status == 200:
                    return
        except OSError:
            time.sleep(0.2)
    raise RuntimeError("gateway not ready")


def run_gateway_phase(dsn: str, spool: str, bodies: list[bytes], events: int,
                      concurrency: int, profile: str | None) -> dict[str, Any]:
    """(a) for these bodies: a fresh gateway process, posted to until every row is
    stored, then stopped. Seconds to the last answer and until stored, and the CPU
    the gateway, the load generator and the machine used meanwhile."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {**os.environ, "TRAIL_STORE_DSN": dsn, "TRAIL_GATEWAY_PORT": str(port),
           "TRAIL_GATEWAY_AUDIT_TOKEN": TOKEN, "TRAIL_CLUSTER_NAME": "bench",
           "TRAIL_GATEWAY_SPOOL_DIR": spool, "KUBECONFIG": "/nonexistent"}
    command = [sys.executable, "-m", "trail_operator.cli.main", "gateway"]
    if profile:
        # py-spy's collapsed stacks of the gateway, to find what to make faster.
        command = ["py-spy", "record", "--format", "raw", "--rate", "200", "--nonblocking",
                   "--subprocesses", "-o", profile, "--", *command]
    # Its log goes to a file: a pipe nobody reads would stall it once full.
    log_path = Path(spool).parent / "gateway.log"
    with log_path.open("ab") as log:
        gateway = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=log)
    try:
        try:
            wait_ready(url)
        except RuntimeError:
            raise RuntimeError(f"gateway not ready; its log ends: "
                               f"{log_path.read_bytes()[-2000:].decode(errors='replace')}"
                               ) from None
        pid = profiled_pid(gateway.pid) if profile else gateway.pid
        start_cpu = thread_cpu(pid)
        start_sender = process_cpu(os.getpid())
        start_machine = machine_cpu()
        answered, seconds = asyncio.run(post_all(url, bodies, concurrency))
        cpu = cpu_per_event(start_cpu, thread_cpu(pid), events)
        sender = process_cpu(os.getpid()) - start_sender
        busy, total = (end - start for end, start in
                       zip(machine_cpu(), start_machine, strict=True))
    finally:
        gateway.send_signal(signal.SIGINT)
        try:
            gateway.wait(30)
        except subprocess.TimeoutExpired:
            gateway.kill()
    return {"answered": answered, "seconds": seconds, "cpu": cpu,
            "sender_us": sender / events * 1e6, "machine_busy": busy / total}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--phase", default="main")
    parser.add_argument("--dsn")
    parser.add_argument("--spool")
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--first", type=int, default=0)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--profile", help="write py-spy collapsed stacks of the gateway to"
                        " PROFILE.100 and PROFILE.1000")
    args = parser.parse_args()
    if args.phase == "setup":
        return phase_setup(args.dsn)
    if args.phase == "direct":
        return phase_direct(args.dsn, args.events, args.first)
    if args.phase == "count":
        return phase_count(args.dsn)
    if args.phase == "latency":
        return phase_latency(args.dsn, args.spool, 1000, 100, 30)

    with tempfile.TemporaryDirectory(prefix="trail-ingest-") as tmp:
        dsn = f"chdb://{tmp}/ch"
        # (b) has an engine data path of its own: on the gateway's, the merges of
        # (a)'s parts would still be running in (b)'s time.
        direct_dsn = f"chdb://{tmp}/direct"
        # The (b) phases after each (a) phase: a path of their own, in the same order,
        # so each meets the tables the one before (a) met.
        after_dsn = f"chdb://{tmp}/direct-after"
        child("setup", dsn)
        spool = f"{tmp}/spool"
        half = args.events // 2
        rest = args.events - half
        bodies_100 = event_list_bodies(half, 100)
        bodies_1000 = event_list_bodies(rest, 1000, first=half)
        parse_us = isolated_parse_us(bodies_100[:200])
        # Each (a) phase runs between two (b) phases of the same events and is
        # compared with their mean: the shared machine's speed drifts by half over
        # minutes, and a drift during the three cancels out. Each (a) phase has a
        # gateway process of its own, stopped before the next (b) phase (chDB serves
        # a path to one process).
        phases = {}
        for size, bodies, count, first in (("100", bodies_100, half, 0),
                                           ("1000", bodies_1000, rest, half)):
            events = ("--events", str(count), "--first", str(first))
            direct = orjson.loads(child("direct", direct_dsn, *events))
            profile = f"{args.profile}.{size}" if args.profile else None
            phase = run_gateway_phase(dsn, spool, bodies, count, args.concurrency, profile)
            after = orjson.loads(child("direct", after_dsn, *events))
            phases[size] = {"direct": direct, "after": after, **phase}
        stored = orjson.loads(child("count", dsn))
        steady = orjson.loads(child("latency", dsn, "--spool", spool))
    latencies = sorted(steady["queryable"])
    p50 = statistics.median(latencies)
    p99 = latencies[int(len(latencies) * 0.99) - 1]
    acks = sorted(steady["acknowledged"])
    direct_counts = phases["1000"]["direct"]["counts"]  # both (b) phases' rows
    print(f"rows stored by the gateway: {stored}")
    print(f"rows of the same events inserted directly: {direct_counts}")
    for table, count in direct_counts.items():
        ours = table.removesuffix("_direct")
        if stored[ours] != count:
            raise SystemExit(f"the gateway stored {stored[ours]} rows in {ours};"
                             f" the same events inserted directly make {count}")
    print(f"parse path alone, in an idle process: {parse_us:.1f} us per event")
    figures: dict[str, dict[str, Any]] = {}
    # Merges run behind the inserts, and a restarted gateway takes up those left
    # unfinished: the second phase also pays for merging the first one's parts.
    for size, count in (("100", half), ("1000", rest)):
        phase = phases[size]
        rate = count / phase["seconds"]
        before, after = (phase[key]["events"] / phase[key]["seconds"]
                         for key in ("direct", "after"))
        direct_rate = (before + after) / 2
        print(f"lists of {size}: {count:,} events answered in {phase['answered']:.2f} s"
              f" ({count / phase['answered']:,.0f} events/s), all stored"
              f" {phase['seconds'] - phase['answered']:.2f} s later; the same events"
              f" inserted directly: {before:,.0f} events/s just before, {after:,.0f} just"
              f" after (mean {direct_rate:,.0f})")
        print(f"  while posting: the load generator used {phase['sender_us']:.1f} us of CPU"
              f" per event; the machine's cores were {phase['machine_busy']:.0%} busy")
        print("  gateway CPU per event: " + ", ".join(
            f"{kind} {value:.1f} us" for kind, value in phase["cpu"].items()))
        figures |= {
            f"a_end_to_end_batches_of_{size}": {"value": rate, "unit": "events/s",
                                                "limit": 30000, "ratio": rate / 30000},
            f"b_engine_direct_insert_beside_batches_of_{size}": {"value": direct_rate,
                                                                 "unit": "events/s"},
            f"b_just_before_batches_of_{size}": {"value": before, "unit": "events/s"},
            f"b_just_after_batches_of_{size}": {"value": after, "unit": "events/s"},
            f"a_over_b_batches_of_{size}": {"value": rate / direct_rate, "unit": "ratio",
                                            "limit": 0.5, "ratio": rate / direct_rate / 0.5},
            f"answered_batches_of_{size}": {"value": count / phase["answered"],
                                            "unit": "events/s"},
            f"gateway_cpu_per_event_batches_of_{size}": {"value": phase["cpu"]["total"],
                                                         "unit": "us"},
        }
    report("ingest: one gateway process, 3 stores, chDB", {
        **figures,
        "parse_path_alone_per_event": {"value": parse_us, "unit": "us"},
        "c_latency_p50_at_1000_per_s": {"value": p50, "unit": "s"},
        "c_latency_p99_at_1000_per_s": {"value": p99, "unit": "s", "limit": 2.0,
                                        "ratio": p99 / 2.0},
        "c_acknowledgement_p50_at_1000_per_s": {"value": statistics.median(acks), "unit": "s"},
        "c_acknowledgement_p99_at_1000_per_s": {"value": acks[int(len(acks) * 0.99) - 1],
                                                "unit": "s"},
    })


if __name__ == "__main__":
    main()
