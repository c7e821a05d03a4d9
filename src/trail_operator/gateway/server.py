"""Serving a Gateway over HTTP(S) on an event loop that may host other components."""

from __future__ import annotations

from aiohttp import web

from trail_operator.gateway.app import Gateway
from trail_operator.gateway.auth import build_ssl_context


class GatewayServer:
    def __init__(self, gateway: Gateway, extra_routes: list[web.RouteDef] | None = None) -> None:
        self.gateway = gateway
        self.extra_routes = extra_routes or []
        self._runner: web.AppRunner | None = None

    async def start(self) -> None:
        await self.gateway.start()
        app = self.gateway.build_app()
        app.add_routes(self.extra_routes)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        config = self.gateway.config
        site = web.TCPSite(self._runner, config.host, config.port,
                           ssl_context=build_ssl_context(config))
        await site.start()

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        await self.gateway.stop()
