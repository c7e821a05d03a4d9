"""`trailctl`: the command line (SPEC.md, "CLI")."""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
from collections.abc import Sequence
from pathlib import Path

from trail_operator.config import Settings


def _cmd_up(args: argparse.Namespace) -> int:
    from trail_operator.cli.sandbox import up

    up(Path(args.data_dir), args.gateway_port)
    return 0


def _cmd_operator(args: argparse.Namespace) -> int:
    from trail_operator.cli.processes import load_kube_credentials, run_operator
    from trail_operator.store.client import Store

    settings = Settings.from_env()
    load_kube_credentials()
    asyncio.run(run_operator(settings, Store(settings.store_dsn, settings.store_database)))
    return 0


def _cmd_gateway(args: argparse.Namespace) -> int:
    from trail_operator.cli.processes import load_kube_credentials, run_gateway
    from trail_operator.gateway.config import GatewayConfig
    from trail_operator.store.client import Store

    settings = Settings.from_env()
    try:
        load_kube_credentials()
    except Exception as exc:  # the audit webhook needs no API access; channels do
        print(f"trailctl gateway: no Kubernetes credentials ({exc}); PutAuditEvents channels "
              "cannot be resolved", file=sys.stderr)
    store = Store(settings.store_dsn, settings.store_database)

    async def serve() -> None:
        # SIGTERM (how Kubernetes stops a pod) drains like Ctrl-C: pending rows are
        # inserted, or stay in the spool, before the process exits.
        stop = asyncio.Event()
        for signum in (signal.SIGTERM, signal.SIGINT):
            asyncio.get_running_loop().add_signal_handler(signum, stop.set)
        await run_gateway(settings, GatewayConfig.from_env(), store, stop_flag=stop)

    asyncio.run(serve())
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="trailctl", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    up = sub.add_parser("up", help="run the local sandbox (what `make run` starts)")
    up.add_argument("--data-dir", default=".trail", help="where everything is kept")
    up.add_argument("--gateway-port", type=int, default=None)
    up.set_defaults(func=_cmd_up)

    sub.add_parser("operator", help="run the Kopf operator").set_defaults(func=_cmd_operator)
    sub.add_parser("gateway", help="run the ingest gateway").set_defaults(func=_cmd_gateway)

    from trail_operator.cli.commands import add_query_commands

    add_query_commands(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
