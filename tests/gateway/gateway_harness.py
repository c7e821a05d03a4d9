"""A gateway of its own in a background thread, for failure and fuzz tests.

Unlike the `trail` fixture's gateway it can be given a broken store, tiny
limits, or fixed channels, without disturbing the other tests.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace

from trail_operator.config import Settings
from trail_operator.gateway.app import Gateway
from trail_operator.gateway.channels import Channel, ChannelDirectory, ChannelError
from trail_operator.gateway.config import GatewayConfig
from trail_operator.gateway.server import GatewayServer
from trail_operator.sandbox.controlplane import free_port
from trail_operator.store.catalog import StoreEntry
from trail_operator.store.client import Store

AUDIT_TOKEN = "harness-audit-token"


class FixedChannels(ChannelDirectory):
    """Channels given up front instead of read from Integrations."""

    def __init__(self, channels: dict[str, Channel]) -> None:
        super().__init__()
        self.channels = channels

    def resolve(self, namespace: str, name: str) -> Channel:
        try:
            return self.channels[f"{namespace}/{name}"]
        except KeyError:
            raise ChannelError(404, "ChannelNotFound",
                               f"no Integration {namespace}/{name}") from None


@dataclass
class RunningGateway:
    gateway: Gateway
    url: str
    headers: dict[str, str]


@contextmanager
def running_gateway(store: Store, entries: list[StoreEntry], *,
                    channels: dict[str, Channel] | None = None,
                    refresh_routes: bool = False, **limits: float) -> Iterator[RunningGateway]:
    config = replace(GatewayConfig(port=free_port(), audit_token=AUDIT_TOKEN), **limits)
    gateway = Gateway(config, Settings(cluster_name="harness", region="test-1"), store,
                      channels=FixedChannels(channels or {}))
    loop = asyncio.new_event_loop()
    server = GatewayServer(gateway)

    async def start() -> None:
        await server.start()
        if not refresh_routes:
            # Fixed routes: the harness's store may be unreachable on purpose.
            assert gateway._refresher is not None
            gateway._refresher.cancel()
        gateway.set_entries(entries)

    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    asyncio.run_coroutine_threadsafe(start(), loop).result(30)
    try:
        yield RunningGateway(gateway, f"http://127.0.0.1:{config.port}",
                             {"Authorization": f"Bearer {AUDIT_TOKEN}"})
    finally:
        asyncio.run_coroutine_threadsafe(server.stop(), loop).result(30)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()
