"""The gateway's settings come from its environment, with documented defaults."""

from __future__ import annotations

import os
from pathlib import Path

from trail_operator.gateway.config import GatewayConfig


def test_spool_and_backlog_limits_are_read_from_the_environment() -> None:
    config = GatewayConfig.from_env({
        "TRAIL_GATEWAY_SPOOL_DIR": "/var/spool/trail",
        "TRAIL_GATEWAY_SPOOL_MAX_ROWS": "40000",
        "TRAIL_GATEWAY_SPOOL_LINGER": "0.25",
        "TRAIL_GATEWAY_SPOOL_MAX_LINGER": "2",
        "TRAIL_GATEWAY_SPOOL_BUSY_ROWS": "5000",
        "TRAIL_GATEWAY_MAX_PENDING_ROWS": "100000",
    })
    assert config.spool_dir == Path("/var/spool/trail")
    assert (config.spool_max_rows, config.spool_linger, config.spool_max_linger,
            config.spool_busy_rows, config.max_pending_rows) == (40_000, 0.25, 2.0, 5_000, 100_000)


def test_without_settings_the_spool_is_off_and_the_defaults_apply() -> None:
    config = GatewayConfig.from_env({})
    assert config.spool_dir is None
    assert (config.spool_max_rows, config.spool_linger, config.spool_max_linger,
            config.spool_busy_rows, config.max_pending_rows) == (60_000, 0.5, 1.5, 10_000, 300_000)


def test_parse_workers_default_to_one_per_cpu_up_to_four_and_can_be_set_or_turned_off(
        ) -> None:
    cpus = len(os.sched_getaffinity(0))
    assert GatewayConfig.from_env({}).workers_for_parsing == min(4, cpus)
    assert GatewayConfig.from_env({"TRAIL_GATEWAY_PARSE_WORKERS": "3"}).workers_for_parsing == 3
    assert GatewayConfig.from_env({"TRAIL_GATEWAY_PARSE_WORKERS": "0"}).workers_for_parsing == 0
