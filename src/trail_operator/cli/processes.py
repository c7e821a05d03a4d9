"""The long-running processes, composed from components around one store client.

chDB allows one process per data path, so with the embedded store the
operator and the gateway run in one process and share one `Store`; against a
ClickHouse server each can run alone with the same code.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import os
import sys
import threading
from collections.abc import AsyncIterator, Iterator

import kopf
from kubernetes import config as kube_config

import trail_operator.operator.handlers  # noqa: F401  (registers the Kopf handlers)
from trail_operator.config import Settings
from trail_operator.gateway.app import Gateway
from trail_operator.gateway.config import GatewayConfig
from trail_operator.gateway.server import GatewayServer
from trail_operator.operator.context import OperatorContext
from trail_operator.store.catalog import ensure_catalog
from trail_operator.store.client import Store

Flag = threading.Event | asyncio.Event


# How long a thread may hold the interpreter lock while another waits for it
# (Python's default: 5 ms). See `tune_interpreter_for_ingest`.
INGEST_SWITCH_INTERVAL_S = 0.0005


def tune_interpreter_for_ingest() -> None:
    """Keep the cyclic garbage collector off the ingest hot path, and hand the
    interpreter lock over sooner.

    Each audit batch allocates tens of thousands of short-lived dicts and lists;
    with the default thresholds the collector runs every 700 allocations and
    rescans survivors, which measured as two thirds of the time spent parsing.
    Those trees hold no cycles (reference counting frees them), so: freeze what
    start-up created, and collect young objects rarely.

    The event loop parses while holding the lock; the spool's fsync and the
    inserts finish in worker threads that need it for a moment, and a call is
    answered only after its fsync. At the default 5 ms a worker could wait that
    long twice per fsync while senders wait for their answers. At 0.5 ms, in
    interleaved runs of bench/ingest.py: 31.3k / 32.3k events/s (lists of 100 /
    1000, mean of 4 runs) against 29.7k / 28.9k, at the same CPU per event.
    """
    gc.freeze()
    gc.set_threshold(100_000, 50, 100)
    sys.setswitchinterval(INGEST_SWITCH_INTERVAL_S)


def load_kube_credentials() -> None:
    """Credentials for our own Kubernetes API calls (Kopf logs in by itself)."""
    try:
        kube_config.load_incluster_config()
    except kube_config.ConfigException:
        # The client fixes its default path at import; read $KUBECONFIG now.
        kube_config.load_kube_config(config_file=os.environ.get("KUBECONFIG"))


async def run_operator(settings: Settings, store: Store, stop_flag: Flag | None = None,
                       ready_flag: Flag | None = None) -> None:
    # The startup handler makes the store catalog before any resource is handled.
    await kopf.operator(
        clusterwide=True, standalone=True, memo=kopf.Memo(context=OperatorContext(settings, store)),
        stop_flag=stop_flag, ready_flag=ready_flag,
    )


@contextlib.asynccontextmanager
async def serving_gateway(settings: Settings, config: GatewayConfig,
                          store: Store) -> AsyncIterator[None]:
    """The gateway, serving on this event loop for the duration of the block."""
    await asyncio.to_thread(ensure_catalog, store)
    server = GatewayServer(Gateway(config, settings, store))
    await server.start()
    tune_interpreter_for_ingest()
    try:
        yield
    finally:
        await server.stop()


async def run_gateway(settings: Settings, config: GatewayConfig, store: Store,
                      stop_flag: Flag | None = None, ready_flag: Flag | None = None) -> None:
    async with serving_gateway(settings, config, store):
        if ready_flag is not None:
            ready_flag.set()
        await _wait(stop_flag)


async def run_all_in_one(settings: Settings, config: GatewayConfig, store: Store,
                         stop_flag: Flag | None = None, ready_flag: Flag | None = None) -> None:
    """Operator and gateway in one process around one store (the embedded layout)."""
    async with serving_gateway(settings, config, store):
        await run_operator(settings, store, stop_flag=stop_flag, ready_flag=ready_flag)


async def _wait(stop_flag: Flag | None) -> None:
    if stop_flag is None:
        await asyncio.Event().wait()
    elif isinstance(stop_flag, asyncio.Event):
        await stop_flag.wait()
    else:
        while not stop_flag.is_set():
            await asyncio.sleep(0.2)


@contextlib.contextmanager
def all_in_one_in_thread(settings: Settings, config: GatewayConfig, store: Store,
                         timeout: float = 60) -> Iterator[None]:
    """The all-in-one process's work in a thread of this process (tests, benchmarks).

    The caller keeps `store` and so reads the very tables the components write.
    """
    stop, ready = threading.Event(), threading.Event()
    thread = threading.Thread(
        target=lambda: asyncio.run(
            run_all_in_one(settings, config, store, stop_flag=stop, ready_flag=ready)),
        name="all-in-one", daemon=True,
    )
    thread.start()
    try:
        if not ready.wait(timeout):
            raise RuntimeError(f"the operator did not become ready within {timeout:g} s")
        yield
    finally:
        stop.set()
        thread.join(30)
