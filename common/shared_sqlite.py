"""One SQLite file written by many threads and processes: the fast paths of a state database.

Each sits behind the plain way it replaces, and tests/common/test_shared_sqlite.py compares them:

* ``thread_connection``: each thread keeps its connection open (opening the file costs more
  than a key look-up), reopened if the file was replaced. Plain: a connection per call.
* ``begin_immediate``: the write lock taken by short retries. SQLite's busy handler sleeps up
  to 100 ms between tries, long enough for a process that commits back to back to keep the
  lock for seconds. Plain: ``BEGIN IMMEDIATE`` under a busy timeout.
* ``GroupCommit``: the callers that write at the same moment share ONE commit (and fsync);
  each returns once the commit holding its work is done, or raises what it raised. Plain:
  ``commit([work])``, one commit per caller.
* ``insert_rows``: many rows inserted by a few statements of up to 500 rows each. Plain:
  ``executemany``, one statement per row.
"""

from __future__ import annotations

import asyncio
import os
import random
import sqlite3
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

_threads = threading.local()


def _inode(path: Path) -> tuple[int, int] | None:
    try:
        info = os.stat(path)
    except OSError:
        return None
    return info.st_dev, info.st_ino


def thread_connection(path: Path, connect: Callable[[Path], sqlite3.Connection], keep: int = 4) -> sqlite3.Connection:
    """This thread's connection to ``path`` (``connect(path)`` the first time, or if the file was replaced).

    A thread keeps its last ``keep`` files open. Do not close the connection, nor leave a transaction open on it.
    """
    cache = _threads.__dict__.setdefault("connections", {})  # path -> (connection, inode), least recent first
    conn, inode = cache.pop(path, (None, None))
    if conn is not None and (inode is None or inode != _inode(path)):
        conn.close()
        conn = None
    if conn is None:
        conn = connect(path)
    cache[path] = (conn, _inode(path))
    while len(cache) > keep:
        cache.pop(next(iter(cache)))[0].close()
    return conn


def begin_immediate(conn: sqlite3.Connection, wait_s: float) -> None:
    """``BEGIN IMMEDIATE``, retried every fraction of a millisecond for up to ``wait_s`` while another writer holds
    the lock; then the ``sqlite3.OperationalError`` the busy handler would raise."""
    deadline, delay = time.monotonic() + wait_s, 0.0001
    busy_timeout_ms = conn.execute("PRAGMA busy_timeout").fetchone()[0]
    conn.execute("PRAGMA busy_timeout = 0")
    try:
        while True:
            try:
                conn.execute("BEGIN IMMEDIATE")
                return
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) or time.monotonic() >= deadline:
                    raise
            time.sleep(delay * (0.5 + random.random()))
            delay = min(2 * delay, 0.002)
    finally:
        conn.execute(f"PRAGMA busy_timeout = {busy_timeout_ms}")  # the statements inside wait as usual


ROWS_PER_INSERT = 500  # 8,000 parameters for 16 columns, under SQLite's limit (32,766); a full batch: 2 statements


def insert_rows(conn: sqlite3.Connection, table: str, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    """``conn.executemany("INSERT INTO table (columns) VALUES (?, ...)", rows)``, many rows per statement.

    ``executemany`` runs the statement once per row, and the sqlite3 module lets go of Python's global
    lock around each run: a thread that inserts 1,000 rows while others compute waits 1,000 times to
    take it back, and holds the database's write lock all along (a stage 4 batch's audit rows: 60 ms
    instead of 10 under 8 concurrent batches, so the other worker waited). Two statements wait twice.

    Statements hold 500 rows, then 256, 128... 1 for the rest, so that a connection prepares ten of
    them at most: the sqlite3 module keeps the statements it ran, and one per batch size would fill memory.
    """
    width = len(columns)
    if any(len(row) != width for row in rows):  # checked first: nothing is inserted
        raise sqlite3.ProgrammingError(f"each row must have {width} values, as {table}'s columns")
    most = max(1, min(ROWS_PER_INSERT, conn.getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER) // width))
    start = 0
    while start < len(rows):
        left = len(rows) - start
        size = most if left >= most else 1 << (left.bit_length() - 1)  # else the largest power of two that fits
        values = ", ".join(["(" + ", ".join("?" * width) + ")"] * size)
        part = rows[start : start + size]
        conn.execute(f"INSERT INTO {table} ({', '.join(columns)}) VALUES {values}", [v for row in part for v in row])
        start += size


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
