"""The state database: one SQLite file shared by every worker and every command of stage 4.

It holds the API keys (``auth.py``), the audit trail and its head (``audit.py``), the
served-model pointer (``deployment.py``) and maintenance's verdicts (``feedback.py``). This
module is how they all reach it: the tables, connections, transactions, and the group
commit of the service's hot path. It knows nothing of what the rows mean.

* WAL mode, so that readers (the key and model-pointer look-ups of every request,
  ``GET /audit``) never wait for a writer.
* One writer at a time across threads and processes: ``transaction`` opens ``BEGIN
  IMMEDIATE``, so that what a writer reads (the head of the audit chain, the pointer)
  is still true when it commits. A change and its audit row share one transaction.
* ``GroupCommit``: the threads of one process that want to write at the same moment hand
  their work to whichever of them holds the process's write lock, which does it all in
  ONE transaction; each caller returns once the commit holding its work is done (or gets
  ``AuditUnavailable`` if it failed: then none of it was written). One SQLite writer per
  process instead of one per thread, and one commit for many requests.
* ``reader``: a long-lived connection per thread for the look-ups of every request,
  instead of opening the file each time.

Durability (``AUDIT_SYNC``): ``NORMAL`` (the default) commits to the WAL file without
waiting for the disk: a committed row survives the death of the process (SIGKILL, OOM
kill) but the last commits may be lost if the machine itself stops (power cut, kernel
panic). ``FULL`` waits for the disk at every commit (``fsync``), a cost shared by the
rows of one group commit.
"""

from __future__ import annotations

import asyncio
import os
import random
import sqlite3
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from .settings import get_settings

BUSY_TIMEOUT_MS = 5000  # a writer waits this long for another process's transaction before failing
READERS_PER_THREAD = 4  # state files a thread keeps a reader connection to (tests use many)
GENESIS = "0" * 64  # the audit chain's head before its first row (audit.py)

SCHEMA = f"""
CREATE TABLE IF NOT EXISTS api_keys (
    key_id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    role TEXT NOT NULL,
    key_hash TEXT NOT NULL,
    created_at TEXT NOT NULL,
    created_by TEXT NOT NULL,
    revoked_at TEXT,
    revoked_by TEXT
);
CREATE TABLE IF NOT EXISTS audit (
    seq INTEGER PRIMARY KEY,
    kind TEXT NOT NULL,
    at TEXT NOT NULL,
    actor TEXT NOT NULL,
    request_id TEXT,
    source TEXT,
    equipment_id TEXT,
    inputs TEXT,
    score REAL,
    decision TEXT,
    model_version TEXT,
    app_version TEXT NOT NULL,
    client TEXT,
    details TEXT,
    prev_hash TEXT NOT NULL,
    row_hash TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS audit_request ON audit (request_id);
CREATE INDEX IF NOT EXISTS audit_actor_at ON audit (actor, at);
CREATE INDEX IF NOT EXISTS audit_at ON audit (at);
CREATE TABLE IF NOT EXISTS chain_head (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    count INTEGER NOT NULL,
    head_hash TEXT NOT NULL
);
INSERT OR IGNORE INTO chain_head (id, count, head_hash) VALUES (1, 0, '{GENESIS}');
CREATE TABLE IF NOT EXISTS deployment (
    id INTEGER PRIMARY KEY,
    version TEXT NOT NULL,
    previous_version TEXT,
    action TEXT NOT NULL,
    deployed_at TEXT NOT NULL,
    by TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS feedback (
    id INTEGER PRIMARY KEY,
    audit_seq INTEGER UNIQUE,
    verdict TEXT NOT NULL,
    model_version TEXT NOT NULL,
    request_id TEXT,
    equipment_id TEXT,
    fault_at TEXT,
    comment TEXT,
    at TEXT NOT NULL,
    by TEXT NOT NULL
);
"""


class AuditUnavailable(Exception):
    """The state database, and so the audit trail, cannot be used (read-only folder, full disk,
    locked too long): the caller answers 503, never the prediction. The message is French."""


def db_path(path: str | os.PathLike | None = None) -> Path:
    """The state database: ``path``, else the settings' ``STATE_DB`` (default ``state/stage4.sqlite``)."""
    return Path(path) if path else get_settings().state_db


def now_iso() -> str:
    """The current UTC time as the state database stores it (ISO 8601, milliseconds)."""
    return datetime.now(UTC).isoformat(timespec="milliseconds")


_opened: dict[str, str] = {}  # file -> its PRAGMA synchronous, for the files whose tables this process created


def connect(path: str | os.PathLike | None = None, check_same_thread: bool = True) -> sqlite3.Connection:
    """Open the state database in WAL mode, create its tables if needed, and return the connection.

    The tables are created once per process and file (it takes the write lock), and
    ``synchronous`` is read from the settings (``AUDIT_SYNC``) then, not at every
    connection. The connection is in autocommit mode (``isolation_level=None``): writers
    open their own ``transaction``. One connection per thread, unless the caller serialises
    its use itself and passes ``check_same_thread=False``. Raises AuditUnavailable (French)
    if the file cannot be opened or initialised.
    """
    target = db_path(path)
    conn = None
    try:
        fresh = not target.exists()
        target.parent.mkdir(parents=True, exist_ok=True)
        key = str(target.resolve())
        sync = None if fresh else _opened.get(key)
        if sync is None:
            sync = get_settings().audit_sync
        conn = sqlite3.connect(
            target, timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None, check_same_thread=check_same_thread
        )
        conn.row_factory = sqlite3.Row
        conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        if conn.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
            conn.execute("PRAGMA journal_mode = WAL")  # persistent: set once per file
        conn.execute(f"PRAGMA synchronous = {sync}")
        if key not in _opened or fresh:
            conn.executescript(SCHEMA)
            _opened[key] = sync
    except (OSError, sqlite3.Error, ValueError) as exc:
        if conn is not None:
            conn.close()
        raise AuditUnavailable(f"base d'état {target} inutilisable : {exc}") from None
    return conn


def _inode(path: Path) -> tuple[int, int] | None:
    try:
        info = os.stat(path)
    except OSError:
        return None
    return info.st_dev, info.st_ino


_readers = threading.local()


def reader(path: str | os.PathLike | None = None) -> sqlite3.Connection:
    """This thread's long-lived connection to the state database, for the reads of every request.

    Opening the file costs more than the look-up itself (a key, the model pointer), so each
    thread keeps one connection per file (the last ``READERS_PER_THREAD`` files). It is
    opened again if the file was replaced or deleted meanwhile. Do not close it; do not
    leave a transaction open on it. Every statement in autocommit mode sees the latest
    commit of any process (a revoked key is refused on the next request). Raises
    AuditUnavailable (French) like ``connect``.
    """
    target = db_path(path)
    key = (os.fspath(target), os.getpid())
    cache = getattr(_readers, "connections", None)
    if cache is None:
        cache = _readers.connections = OrderedDict()
    inode = _inode(target)
    found = cache.get(key)
    if found is not None and inode is not None and found[1] == inode:
        cache.move_to_end(key)
        return found[0]
    if found is not None:
        del cache[key]
        found[0].close()
    conn = connect(target)
    cache[key] = (conn, _inode(target))
    while len(cache) > READERS_PER_THREAD:
        cache.popitem(last=False)[1][0].close()
    return conn


def _begin_polling(conn: sqlite3.Connection, wait_s: float) -> None:
    """``BEGIN IMMEDIATE``, retried every fraction of a millisecond for up to ``wait_s`` while another writer holds the lock.

    SQLite's own busy handler sleeps 1, 2, 5... then 100 ms between attempts: a process
    whose writer commits back to back (one group after another) can then keep the lock
    for seconds while the other process sleeps. Short, jittered retries catch the gaps.
    """
    deadline = time.monotonic() + wait_s
    delay = 0.0001
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
        conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")  # the statements inside wait as usual


@contextmanager
def transaction(conn: sqlite3.Connection, wait_s: float | None = None) -> Iterator[sqlite3.Connection]:
    """``BEGIN IMMEDIATE`` ... ``COMMIT``: one writer at a time across processes; rollback on error.

    ``wait_s``: wait for the write lock by short retries (``_begin_polling``) rather than
    SQLite's busy handler. Raises AuditUnavailable if SQLite refuses (read-only, disk full,
    busy beyond the timeout).
    """
    try:
        if wait_s is None:
            conn.execute("BEGIN IMMEDIATE")
        else:
            _begin_polling(conn, wait_s)
    except sqlite3.Error as exc:
        raise AuditUnavailable(f"journal d'audit indisponible en écriture : {exc}") from None
    try:
        yield conn
        conn.execute("COMMIT")
    except BaseException as exc:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        if isinstance(exc, sqlite3.Error):
            raise AuditUnavailable(f"journal d'audit indisponible en écriture : {exc}") from None
        raise


class _Job:
    """One caller's work waiting for the group commit, and how it ended."""

    __slots__ = ("work", "result", "error", "done")

    def __init__(self, work: Any):
        self.work = work
        self.result: Any = None
        self.error: BaseException | None = None
        self.done = False


class GroupCommit:
    """This process's writes, committed together: one transaction for the callers waiting at the same moment.

    ``write(conn, works)`` does the work of several callers inside one open transaction and
    returns one result per work, in order. ``run(work)`` queues the work, then takes the
    process's write lock: the thread that holds it writes every queued work in ONE
    transaction (``BEGIN IMMEDIATE``, so still one writer at a time across processes),
    marks them done and releases the lock; a thread that gets the lock after its work was
    written by another just returns its result. Each caller thus returns only after the
    commit that holds its own work, and gets AuditUnavailable if that transaction failed
    (nothing of it, nor of the others in it, was written). While one group is being
    written the next one gathers, so under load a commit (and its ``fsync`` with
    AUDIT_SYNC=FULL) is shared by many requests. Thread-safe. ``run_async`` does the same
    for ``async`` endpoints, the commit in a writer thread of its own.
    """

    def __init__(self, write: Callable[[sqlite3.Connection, list[Any]], list[Any]], path=None):
        self.write = write
        self.path = db_path(path)
        self._queue_lock = threading.Lock()
        self._write_lock = threading.Lock()
        self._queue: list[_Job] = []
        self._conn: sqlite3.Connection | None = None
        self._inode: tuple[int, int] | None = None
        self._executor: ThreadPoolExecutor | None = None

    def run(self, work: Any) -> Any:
        """Write ``work`` with whatever else is queued; its result once committed (AuditUnavailable if not)."""
        return self._flush(self._submit(work))

    async def run_async(self, work: Any) -> Any:
        """``run`` for the event loop: the work is queued in the caller's thread and committed by this
        object's writer thread, in the same groups; the loop never waits for a commit."""
        job = self._submit(work)
        return await asyncio.get_running_loop().run_in_executor(self._writer(), self._flush, job)

    def _submit(self, work: Any) -> _Job:
        job = _Job(work)
        with self._queue_lock:
            self._queue.append(job)
        return job

    def _flush(self, job: _Job) -> Any:
        """Return once ``job`` is committed (writing every queued job if no other thread is): its result."""
        with self._write_lock:
            if not job.done:
                with self._queue_lock:
                    jobs, self._queue = self._queue, []
                self._write(jobs)
        if job.error is not None:
            raise AuditUnavailable(str(job.error)) from None
        return job.result

    def _writer(self) -> ThreadPoolExecutor:
        """The one thread that commits for the event loop (created on first use)."""
        with self._queue_lock:
            if self._executor is None:
                self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="audit-writer")
            return self._executor

    def _connection(self) -> sqlite3.Connection:
        """The writer connection (used under the write lock only), reopened if the file was replaced."""
        inode = _inode(self.path)
        if self._conn is None or inode is None or inode != self._inode:
            self.close()
            self._conn = connect(self.path, check_same_thread=False)
            self._inode = _inode(self.path)
        return self._conn

    def _write(self, jobs: list[_Job]) -> None:
        try:
            conn = self._connection()
            with transaction(conn, wait_s=BUSY_TIMEOUT_MS / 1000):
                results = self.write(conn, [job.work for job in jobs])
            for job, result in zip(jobs, results, strict=True):
                job.result = result
        except AuditUnavailable as exc:
            self.close()  # the next group starts from a fresh connection
            for job in jobs:
                job.error = exc
        except BaseException as exc:  # a bug: each waiting caller must still be released and refused
            for job in jobs:
                job.error = AuditUnavailable(f"journal d'audit indisponible en écriture : {exc!r}")
            raise
        finally:
            for job in jobs:
                job.done = True

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None
