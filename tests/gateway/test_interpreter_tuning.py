"""The gateway process tunes the interpreter for ingest (cli/processes.py)."""

from __future__ import annotations

import gc
import sys
from collections.abc import Iterator

import pytest

from trail_operator.cli.processes import INGEST_SWITCH_INTERVAL_S, tune_interpreter_for_ingest


@pytest.fixture
def restored_interpreter() -> Iterator[None]:
    thresholds, interval = gc.get_threshold(), sys.getswitchinterval()
    yield
    gc.unfreeze()
    gc.set_threshold(*thresholds)
    sys.setswitchinterval(interval)


@pytest.mark.usefixtures("restored_interpreter")
def test_ingest_collects_garbage_rarely_and_hands_the_interpreter_lock_over_sooner() -> None:
    tune_interpreter_for_ingest()
    assert gc.get_threshold()[0] == 100_000
    assert gc.get_freeze_count() > 0
    assert sys.getswitchinterval() == pytest.approx(INGEST_SWITCH_INTERVAL_S)
    assert INGEST_SWITCH_INTERVAL_S < 0.005  # shorter than Python's default
