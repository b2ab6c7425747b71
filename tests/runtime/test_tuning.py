"""Server process tuning."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from kiosk.runtime.tuning import SERVER_GC_THRESHOLDS, tune_for_server


@pytest.fixture
def restore_gc() -> Iterator[None]:
    before = gc.get_threshold()
    yield
    gc.set_threshold(*before)
    gc.unfreeze()


def test_tune_for_server_raises_thresholds_and_freezes(restore_gc: None) -> None:
    tune_for_server()
    assert gc.get_threshold() == SERVER_GC_THRESHOLDS
    assert gc.get_freeze_count() > 0
