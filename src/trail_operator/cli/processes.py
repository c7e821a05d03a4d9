"""The long-running processes, composed from components around one store client.

chDB allows one process per data path, so with the embedded store the
operator and the gateway run in one process and share one `Store`; against a
ClickHouse server each can run alone with the same code.
"""

from __future__ import annotations

import asyncio
import gc
import os
import threading
from typing import Any

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


def tune_gc_for_ingest() -> None:
    """Keep the cyclic garbage collector off the ingest hot path.

    Each audit batch allocates tens of thousands of short-lived dicts and lists;
    with the default thresholds the collector runs every 700 allocations and
    rescans survivors, which measured as two thirds of the time spent parsing.
    Those trees hold no cycles (reference counting frees them), so: freeze what
    start-up created, and collect young objects rarely.
    """
    gc.freeze()
    gc.set_threshold(100_000, 50, 100)


def load_kube_credentials() -> None:
    """Credentials for our own Kubernetes API calls (Kopf logs in by itself)."""
    try:
        kube_config.load_incluster_config()
    except kube_config.ConfigException:
        # The client fixes its default path at import; read $KUBECONFIG now.
        kube_config.load_kube_config(config_file=os.environ.get("KUBECONFIG"))


async def run_operator(settings: Settings, store: Store, stop_flag: Flag | None = None,
                       ready_flag: Flag | None = None) -> None:
    await asyncio.to_thread(ensure_catalog, store)
    await kopf.operator(
        clusterwide=True, standalone=True, memo=kopf.Memo(context=OperatorContext(settings, store)),
        stop_flag=stop_flag, ready_flag=ready_flag,
    )


async def run_gateway(settings: Settings, config: GatewayConfig, store: Store,
                      stop_flag: Flag | None = None, ready_flag: Flag | None = None) -> None:
    await asyncio.to_thread(ensure_catalog, store)
    server = GatewayServer(Gateway(config, settings, store))
    await server.start()
    tune_gc_for_ingest()
    if ready_flag is not None:
        ready_flag.set()
    try:
        await _wait(stop_flag)
    finally:
        await server.stop()


async def run_all_in_one(settings: Settings, config: GatewayConfig, store: Store,
                         stop_flag: Flag | None = None, ready_flag: Flag | None = None) -> None:
    """Operator and gateway in one process around one store (the embedded layout)."""
    await asyncio.to_thread(ensure_catalog, store)
    server = GatewayServer(Gateway(config, settings, store))
    await server.start()
    tune_gc_for_ingest()
    try:
        await run_operator(settings, store, stop_flag=stop_flag, ready_flag=ready_flag)
    finally:
        await server.stop()


async def _wait(stop_flag: Flag | None) -> None:
    if stop_flag is None:
        await asyncio.Event().wait()
    elif isinstance(stop_flag, asyncio.Event):
        await stop_flag.wait()
    else:
        while not stop_flag.is_set():
            await asyncio.sleep(0.2)


def run_in_thread(target: Any, *args: Any, **kwargs: Any) -> tuple[threading.Thread,
                                                                  threading.Event,
                                                                  threading.Event]:
    """Run one of the coroutines above in a thread with its own loop (tests, benchmarks)."""
    stop, ready = threading.Event(), threading.Event()
    thread = threading.Thread(
        target=lambda: asyncio.run(target(*args, stop_flag=stop, ready_flag=ready, **kwargs)),
        name=getattr(target, "__name__", "component"), daemon=True,
    )
    thread.start()
    return thread, stop, ready
