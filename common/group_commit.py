"""Group commit: callers that write at the same moment share one commit.

The plain way is one commit per caller, ``commit([work])``. ``GroupCommit.run(work)`` gives
the same result, but the thread that gets the write lock commits every work queued
meanwhile in ONE call: under load, one transaction (and one fsync) serves many requests.
A caller returns once the commit holding its work is done, or raises what that commit raised.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any


class GroupCommit:
    """``commit(works) -> results`` (one per work, in order; all or nothing), shared by the callers waiting together."""

    def __init__(self, commit: Callable[[list[Any]], list[Any]], thread_name: str = "group-commit"):
        self.commit = commit
        self._queue: list[tuple[Any, Future]] = []
        self._queue_lock = threading.Lock()
        self._write_lock = threading.Lock()
        self._writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix=thread_name)  # for run_async

    def run(self, work: Any) -> Any:
        """The result of ``work`` once committed, with whatever else was queued."""
        return self._flush(self._submit(work))

    async def run_async(self, work: Any) -> Any:
        """``run`` for the event loop: the commit happens in this object's writer thread."""
        job = self._submit(work)
        return await asyncio.get_running_loop().run_in_executor(self._writer, self._flush, job)

    def _submit(self, work: Any) -> Future:
        job: Future = Future()
        with self._queue_lock:
            self._queue.append((work, job))
        return job

    def _flush(self, job: Future) -> Any:
        with self._write_lock:
            if not job.done():  # else another thread committed it while this one waited for the lock
                with self._queue_lock:
                    jobs, self._queue = self._queue, []
                self._write(jobs)
        return job.result()

    def _write(self, jobs: list[tuple[Any, Future]]) -> None:
        try:
            results = self.commit([work for work, _ in jobs])
        except Exception as exc:  # nothing was committed: every caller of the group gets the error
            for _, job in jobs:
                job.set_exception(exc)
            return
        for (_, job), result in zip(jobs, results, strict=True):
            job.set_result(result)

    def close(self) -> None:
        self._writer.shutdown(wait=False)
