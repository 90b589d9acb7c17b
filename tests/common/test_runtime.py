"""The garbage collector's setting for the services with batches (common/runtime.py), and its effect."""

from __future__ import annotations

import gc

from common.runtime import GEN0_THRESHOLD, tune_garbage_collector


def collections_during(work) -> int:
    """How many collections ``work()`` sets off."""
    started = []

    def callback(phase: str, info: dict) -> None:
        if phase == "start":
            started.append(info["generation"])

    gc.callbacks.append(callback)
    try:
        work()
    finally:
        gc.callbacks.remove(callback)
    return len(started)


def batch_like() -> list:
    """What a batch of 1,000 readings keeps alive for a moment: a few thousand small containers."""
    return [{"index": i, "values": [float(i)] * 8} for i in range(1000)]


def test_a_batch_no_longer_sets_off_collections(restore_gc):
    gc.set_threshold(700, 10, 10)
    before = collections_during(batch_like)
    tune_garbage_collector()
    gc.collect()  # counts start from zero, as after a collection in a service
    assert gc.get_threshold() == (GEN0_THRESHOLD, 10, 10)
    assert before >= 2 and collections_during(batch_like) == 0


def cycles(count: int) -> None:
    """Garbage that only the collector frees: ``count`` objects that refer to themselves."""
    for _ in range(count):
        node: dict = {}
        node["self"] = node


def test_cycles_are_still_collected(restore_gc):
    tune_garbage_collector()
    gc.collect()
    cycles(GEN0_THRESHOLD // 2)
    assert gc.collect() == GEN0_THRESHOLD // 2  # none lost
    assert collections_during(lambda: cycles(3 * GEN0_THRESHOLD)) >= 2  # and the collector still runs by itself
