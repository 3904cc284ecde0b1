"""The collector's settings for long-running services."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from policyloop_common.garbage_collection import freeze_what_was_loaded


@pytest.fixture
def collector_restored() -> Iterator[None]:
    thresholds = gc.get_threshold()
    yield
    gc.unfreeze()
    gc.set_threshold(*thresholds)


def test_what_was_loaded_is_frozen_and_what_comes_later_is_collected(collector_restored) -> None:
    class Node:
        def __init__(self) -> None:
            self.other: Node | None = None

    loaded = [Node() for _ in range(1_000)]
    freeze_what_was_loaded()
    assert gc.get_freeze_count() >= len(loaded)
    # A cycle made after the freeze is still the collector's to free.
    later_a, later_b = Node(), Node()
    later_a.other, later_b.other = later_b, later_a
    del later_a, later_b
    assert gc.collect() >= 2
