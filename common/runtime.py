"""Python's garbage collector set for a service whose requests hold thousands of objects at once.

CPython runs a collection whenever 700 more container objects are alive than at the last
one. A batch of 1,000 readings holds several thousand for a few milliseconds (the validated
readings, their results), so each batch set off dozens of collections, and every few batches a
full one that walked everything the service had loaded (libraries, the model): about 90 ms
each on the benchmark machine, about a quarter of a batch's mean time. At 10,000, a batch sets off
none. Nothing is kept longer for it: a request's objects are freed by reference counting as
soon as it ends; the collector is only there for reference cycles, which it still finds.

Called once at startup (``tests/common/test_runtime.py``); the figures are in
docs/annexes/performances.md.
"""

from __future__ import annotations

import gc

GEN0_THRESHOLD = 10_000  # objects alive since the last collection before the next; CPython's default is 700


def tune_garbage_collector() -> None:
    """Collect less often: a batch no longer sets off a collection, cycles are still collected."""
    gc.set_threshold(GEN0_THRESHOLD, *gc.get_threshold()[1:])
