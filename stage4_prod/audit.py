"""The audit trail: who predicted what, with which model, and every admin action, hash-chained in SQLite.

One table, ``audit``, holds one row per scored reading (``kind`` = ``prediction``) and one
row per admin or business action (``deploy``, ``deploy_refused``, ``rollback``,
``key_create``, ``key_revoke``, ``feedback``), in a single chain: each row stores the hash
of the previous row (``prev_hash``) and its own ``row_hash = sha256(prev_hash + canonical
JSON of its content)``, its sequence number included. Editing a row breaks its hash;
inserting or deleting one breaks the link of the next row. Deleting the *last* rows
breaks no link, so a one-row table ``chain_head`` keeps the number of rows and the hash of
the last one, updated in the same transaction as every append: a truncated tail no longer
matches it. Someone able to rewrite the whole file can rewrite the head too: against that,
copy the head hash that ``verify`` prints somewhere the service cannot write (a ticket, a
signed e-mail) and pass it back with ``--ancre``.

Appends are serialised across threads and processes by SQLite itself (``BEGIN
IMMEDIATE``: read the head, insert, move the head, commit) and are committed before the
caller answers: a caller that gets ``AuditUnavailable`` must answer 503, never the
prediction. The database runs in WAL mode so that readers (``GET /audit``, the key and
model-pointer look-ups of every request) never wait for a writer.

The service's hot path adds two things (measured in docs/performances.md):

* ``Recorder``, a group commit: the threads of one process that want to audit at the
  same moment hand their rows to whichever of them holds the write lock, which chains
  them all in ONE transaction; each caller returns only once the transaction holding its
  rows is committed (or raises ``AuditUnavailable`` if it failed: then none of them was
  written). One SQLite writer per process instead of one per thread: no busy-wait
  between the threads of a process, and one commit for many requests.
* ``reader``: a long-lived connection per thread for the look-ups of every request (key,
  model pointer), instead of opening the file each time.

Durability (``AUDIT_SYNC``): ``NORMAL`` (the default) commits to the WAL file without
waiting for the disk: a committed row survives the death of the process (SIGKILL, OOM
kill) but the last commits may be lost if the machine itself stops (power cut, kernel
panic). ``FULL`` waits for the disk at every commit (``fsync``): a few milliseconds per
commit on an ordinary disk, shared by the rows of one group commit.

    python -m stage4_prod.audit verify [--db FICHIER] [--ancre HASH]
    python -m stage4_prod.audit export [--db FICHIER] [--utilisateur NOM] [--depuis ISO] > audit.csv
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import hashlib
import io
import json
import math
import os
import random
import sqlite3
import sys
import threading
import time
from collections import OrderedDict
from collections.abc import Iterable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from json.encoder import encode_basestring
from operator import itemgetter
from pathlib import Path
from typing import Any

from common.data import float_texts
from stage4_prod import __version__

DEFAULT_DB = Path("state") / "stage4.sqlite"
GENESIS = "0" * 64  # prev_hash of the first row
BUSY_TIMEOUT_MS = 5000  # a writer waits this long for another process's transaction before failing
KINDS = ("prediction", "deploy", "deploy_refused", "rollback", "key_create", "key_revoke", "feedback")
# The content a row's hash covers, in this order (prev_hash and row_hash are the chain itself).
CONTENT = (
    "seq",
    "kind",
    "at",
    "actor",
    "request_id",
    "source",
    "equipment_id",
    "inputs",
    "score",
    "decision",
    "model_version",
    "app_version",
    "client",
    "details",
)
COLUMNS = (*CONTENT, "prev_hash", "row_hash")
_FIELDS = tuple(name for name in CONTENT if name != "seq")  # what a caller gives (_entry)
_ORDER = sorted(CONTENT)  # the order of the keys in canonical JSON
MAX_QUERY_ROWS = 10_000
SYNC_MODES = ("NORMAL", "FULL", "EXTRA")  # PRAGMA synchronous values AUDIT_SYNC may take
DEFAULT_SYNC = "NORMAL"  # survives a process crash, not a power cut: see the module doc
READERS_PER_THREAD = 4  # state files a thread keeps a reader connection to (tests use many)

SCHEMA = f"""
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
"""


class AuditUnavailable(Exception):
    """The audit trail cannot be written (read-only folder, full disk, locked too long): answer 503."""


def db_path(path: str | os.PathLike | None = None) -> Path:
    """The state database: ``path``, else ``$STATE_DB``, else ``state/stage4.sqlite``."""
    return Path(path or os.environ.get("STATE_DB") or DEFAULT_DB)


def sync_mode(value: str | None = None) -> str:
    """``PRAGMA synchronous`` of every connection: ``value``, else ``$AUDIT_SYNC``, else NORMAL.

    Raises ValueError (French) for anything but NORMAL, FULL or EXTRA.
    """
    mode = (value or os.environ.get("AUDIT_SYNC") or DEFAULT_SYNC).strip().upper()
    if mode not in SYNC_MODES:
        raise ValueError(f"AUDIT_SYNC={mode!r} invalide : valeurs admises {', '.join(SYNC_MODES)}")
    return mode


_initialised: set[tuple[str, str]] = set()  # (file, extra schema) this process has already created


def connect(
    path: str | os.PathLike | None = None, extra_schema: str = "", check_same_thread: bool = True
) -> sqlite3.Connection:
    """Open the state database in WAL mode, create the tables if needed, and return the connection.

    ``extra_schema`` adds the tables of another module (keys, deployment pointer, feedback)
    to the same file, so that their changes and their audit rows share one transaction.
    The schema is run once per process and file (it takes the write lock). The connection is in autocommit mode (``isolation_level=None``): writers open their
    own ``BEGIN IMMEDIATE`` (``transaction``). One connection per thread (unless the caller
    serialises its use itself and passes ``check_same_thread=False``). ``synchronous`` follows
    ``sync_mode()``. Raises AuditUnavailable (French) if the file cannot be opened or initialised.
    """
    target = db_path(path)
    key = (str(target.resolve()), extra_schema)
    conn = None
    try:
        fresh = not target.exists()
        target.parent.mkdir(parents=True, exist_ok=True)
        sync = sync_mode()
        conn = sqlite3.connect(
            target, timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None, check_same_thread=check_same_thread
        )
        conn.row_factory = sqlite3.Row
        conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        if conn.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
            conn.execute("PRAGMA journal_mode = WAL")  # persistent: set once per file
        conn.execute(f"PRAGMA synchronous = {sync}")  # NORMAL: survives a process crash; FULL: a power cut
        if fresh or key not in _initialised:
            conn.executescript(SCHEMA + extra_schema)
            _initialised.add(key)
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


def reader(path: str | os.PathLike | None = None, extra_schema: str = "") -> sqlite3.Connection:
    """This thread's long-lived connection to the state database, for the reads of every request.

    Opening the file costs more than the look-up itself (a key, the model pointer), so each
    thread keeps one connection per file (the last ``READERS_PER_THREAD`` files). It is
    opened again if the file was replaced or deleted meanwhile. Do not close it; do not
    leave a transaction open on it. Every statement in autocommit mode sees the latest
    commit of any process (a revoked key is refused on the next request). Raises
    AuditUnavailable (French) like ``connect``.
    """
    target = db_path(path)
    key = (os.fspath(target), extra_schema, os.getpid())
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
    conn = connect(target, extra_schema)
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


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


def canonical(value: Any) -> str:
    """The one JSON spelling of ``value`` that hashes are computed on (sorted keys, no spaces)."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def row_hash(prev_hash: str, content: Mapping[str, Any]) -> str:
    """sha256 of the previous row's hash followed by the canonical JSON of this row's content."""
    body = canonical({name: content.get(name) for name in CONTENT})
    return hashlib.sha256((prev_hash + body).encode("utf-8")).hexdigest()


def _entry(values: Mapping[str, Any], at: str | None) -> dict[str, Any]:
    """A row's content from a caller's mapping: JSON columns serialised, floats checked finite.

    ``at`` is the default time (``None``: left for ``_chain`` to stamp). Raises ValueError.
    """
    prepared = _Prepared([values], at)
    return {"kind": prepared.kinds[0], "at": prepared.times[0], **dict(zip(CONTENT[3:], prepared.rest[0], strict=True))}


def _check(kind: Any, actor: Any, inputs: Any, details: Any, score: Any) -> None:
    """Raise the ValueError (or the error of ``canonical`` or ``float``) of one row's first wrong field."""
    if kind not in KINDS:
        raise ValueError(f"unknown audit kind {kind!r}")
    if not actor:
        raise ValueError("an audit row needs an actor")
    for value in (inputs, details):
        if value is not None and not isinstance(value, str):
            canonical(value)
    if score is not None and not math.isfinite(float(score)):
        raise ValueError("an audited score must be finite")


class _Prepared:
    """The rows of one caller, as ``_chain`` needs them: ``_entry`` of each, worked out column by column.

    ``kinds``, ``times`` (``None``: for ``_chain`` to stamp) and ``rest`` (the values of
    ``CONTENT[3:]``, JSON columns serialised) per row; ``cuts``: the canonical JSON of each
    row's content cut around ``at`` and ``seq``, which ``_chain`` fills in to hash the row
    without serialising it again. The rows of a batch share most values: each distinct one
    is serialised once. Raises ValueError (nothing prepared) as ``_entry`` would, on the
    first wrong row.
    """

    __slots__ = ("kinds", "times", "rest", "cuts")

    def __init__(self, values: Iterable[Mapping[str, Any]], at: str | None, kind: str | None = None):
        rows = list(values)
        n = len(rows)
        columns = {name: [row.get(name) for row in rows] for name in _FIELDS if name != "kind" or kind is None}
        if kind is not None:
            columns["kind"] = [kind] * n
        columns["at"] = [t or at for t in columns["at"]]
        columns["app_version"] = [v or __version__ for v in columns["app_version"]]
        try:
            if not set(columns["kind"]) <= set(KINDS) or not all(columns["actor"]):
                raise ValueError
            columns["score"] = [None if s is None else float(s) for s in columns["score"]]
            if not all(math.isfinite(s) for s in columns["score"] if s is not None):
                raise ValueError
            for name in ("inputs", "details"):
                objects = [i for i, v in enumerate(columns[name]) if v is not None and not isinstance(v, str)]
                for i, text in zip(objects, _canonical_objects([columns[name][i] for i in objects]), strict=True):
                    columns[name][i] = text
        except (ValueError, TypeError, OverflowError):  # raise what the first wrong row raises, row by row
            for row in rows:
                _check(kind or row.get("kind"), *(row.get(name) for name in ("actor", "inputs", "details", "score")))
            raise
        self.kinds, self.times = columns["kind"], columns["at"]
        self.rest = list(zip(*(columns[name] for name in CONTENT[3:]), strict=True))
        # The canonical JSON of each row's content: keys in sorted order, each value as canonical()
        # writes it; "at" and "seq" are left out, they are known in _chain only.
        parts: list[list[Any]] = [[], [], []]
        part, text = 0, "{"
        for name in _ORDER:
            text += _json(name) + ":"
            if name in ("at", "seq"):
                parts[part].append([text] * n)
                part, text = part + 1, ","
            else:
                parts[part] += [[text] * n, _json_column(columns[name])]
                text = ","
        parts[part].append([text[:-1] + "}"] * n)
        self.cuts = list(zip(*(map("".join, zip(*columns, strict=True)) for columns in parts), strict=True))

    def __len__(self) -> int:
        return len(self.kinds)


def _json(value: Any) -> str:
    """``canonical(value)``, without the encoder's set-up for the types a row holds (text, number, null)."""
    if value is None:
        return "null"
    kind = type(value)
    if kind is str:
        return encode_basestring(value)
    if kind is float and math.isfinite(value):
        return float.__repr__(value)
    if kind is int:
        return int.__repr__(value)
    return canonical(value)


def _json_column(values: list[Any]) -> list[str]:
    """``_json`` of each value; each distinct text, or float (sensors repeat their values), worked out once.

    Floats are only looked up by value when there is no zero among them: a set takes 0.0 and
    -0.0 for the same value, canonical JSON does not.
    """
    types = set(map(type, values))
    if types == {float} and all(map(math.isfinite, values)):  # canonical() writes floats as repr
        return float_texts(values)
    distinct = set(values) if types <= {str, type(None)} or types == {float} else {0.0}
    if 0.0 in distinct or 2 * len(distinct) > len(values):  # a zero, or mostly distinct values
        return list(map(encode_basestring if types == {str} else _json, values))
    return list(map({v: _json(v) for v in distinct}.__getitem__, values))


def _canonical_objects(objects: list[Any]) -> list[str]:
    """``canonical`` of each object; column by column when they are JSON objects with the same text keys."""
    if not objects or set(map(type, objects)) != {dict} or len(set(map(tuple, objects))) != 1:
        return list(map(canonical, objects))
    keys = sorted(objects[0]) if all(type(key) is str for key in objects[0]) else None
    if not keys:  # no key, or keys that canonical() turns into text (or refuses)
        return list(map(canonical, objects))
    n = len(objects)
    values = zip(*map(itemgetter(*keys), objects), strict=True) if len(keys) > 1 else [[o[keys[0]] for o in objects]]
    columns = [
        c
        for i, (key, column) in enumerate(zip(keys, values, strict=True))
        for c in (["{,"[i > 0] + _json(key) + ":"] * n, _json_column(list(column)))
    ]
    return [text + "}" for text in map("".join, zip(*columns, strict=True))]


def _chain(conn: sqlite3.Connection, groups: Iterable[_Prepared]) -> list[int]:
    """Chain prepared rows (``_Prepared``) after the head, in the open transaction; the count after each group.

    Rows without a time get the time of this call, so that ``at`` follows ``seq``.
    """
    count, head = conn.execute("SELECT count, head_hash FROM chain_head WHERE id = 1").fetchone()
    at = now_iso()
    at_json = _json(at)
    rows, counts = [], []
    for prepared in groups:
        for kind, stamp, rest, (before, between, after) in zip(
            prepared.kinds, prepared.times, prepared.rest, prepared.cuts, strict=True
        ):
            count += 1
            # row_hash(head, row): the canonical JSON cut around "at" and "seq", filled in
            stamp_json = at_json if stamp is None else _json(stamp)
            body = f"{head}{before}{stamp_json}{between}{count}{after}"
            row_hash = hashlib.sha256(body.encode("utf-8")).hexdigest()
            rows.append((count, kind, stamp or at, *rest, head, row_hash))
            head = row_hash
        counts.append(count)
    if rows:
        placeholders = ", ".join("?" * len(COLUMNS))
        conn.executemany(f"INSERT INTO audit ({', '.join(COLUMNS)}) VALUES ({placeholders})", rows)
        conn.execute("UPDATE chain_head SET count = ?, head_hash = ? WHERE id = 1", (count, head))
    return counts


def append(conn: sqlite3.Connection, entries: Iterable[Mapping[str, Any]]) -> int:
    """Chain ``entries`` after the head, inside the caller's open transaction; returns the new count.

    Use within ``transaction(conn)``, so that the rows are written together with whatever
    the caller changes in the same database (a deployment pointer, a key) or not at all.
    """
    if not conn.in_transaction:
        raise RuntimeError("audit.append needs an open transaction (use audit.transaction)")
    return _chain(conn, [_Prepared(entries, None)])[0]


def record(conn: sqlite3.Connection, entries: Iterable[Mapping[str, Any]]) -> int:
    """Append ``entries`` in one transaction of their own and commit before returning.

    Raises AuditUnavailable if they could not be written: nothing was written then.
    """
    with transaction(conn):
        return append(conn, entries)


def record_predictions(conn: sqlite3.Connection, rows: Iterable[Mapping[str, Any]]) -> int:
    """Audit the scored readings of one request (one or a whole batch) in ONE transaction.

    Each row: ``actor``, ``request_id``, ``source``, ``equipment_id``, ``inputs`` (the eight
    sensor values), ``score``, ``decision``, ``model_version``, ``client``; ``at`` and
    ``app_version`` default to now and this service. Call it before sending the response.
    """
    return record(conn, ({**row, "kind": "prediction"} for row in rows))


def record_action(
    conn: sqlite3.Connection,
    kind: str,
    actor: str,
    details: Mapping[str, Any],
    *,
    request_id: str | None = None,
    client: str | None = None,
    model_version: str | None = None,
) -> int:
    """Audit one admin or business action (``deploy``, ``key_create``...) in its own transaction."""
    entry = {
        "kind": kind,
        "actor": actor,
        "details": dict(details),
        "request_id": request_id,
        "client": client,
        "model_version": model_version,
    }
    return record(conn, [entry])


class _Job:
    """The prepared rows of one caller waiting for the group commit, and how it ended."""

    __slots__ = ("entries", "count", "error", "done")

    def __init__(self, entries: _Prepared):
        self.entries = entries
        self.count = 0
        self.error: BaseException | None = None
        self.done = False


class Recorder:
    """Group commit of this process's prediction rows: one transaction for the callers waiting together.

    ``record_predictions(rows)`` prepares the rows (serialisation and checks, outside any
    lock), queues them, then takes the process's write lock. The thread that holds it
    writes every queued job in ONE transaction (``BEGIN IMMEDIATE``, so still one writer at
    a time across processes), marks them done and releases the lock; a thread that gets
    the lock after its job was written by another just returns. Each caller thus returns
    only after the commit that holds its own rows, and gets AuditUnavailable if that
    transaction failed (none of its rows, nor those of the others in it, was written).
    While one group is being written the next one gathers, so under load a commit (and
    its ``fsync`` with AUDIT_SYNC=FULL) is shared by many requests. Thread-safe.
    ``record_predictions_async`` does the same for ``async`` endpoints, the commit in a
    writer thread of the recorder's own.
    """

    def __init__(self, path: str | os.PathLike | None = None):
        self.path = db_path(path)
        self._queue_lock = threading.Lock()
        self._write_lock = threading.Lock()
        self._queue: list[_Job] = []
        self._conn: sqlite3.Connection | None = None
        self._inode: tuple[int, int] | None = None
        self._executor: ThreadPoolExecutor | None = None

    def record_predictions(self, rows: Iterable[Mapping[str, Any]]) -> int:
        """Audit the scored readings of one request, committed before returning; the count after them.

        Same rows as ``record_predictions``. Raises ValueError (nothing queued) for a bad
        row, AuditUnavailable (French) if the transaction could not be committed.
        """
        return self.record(rows, kind="prediction")

    async def record_predictions_async(self, rows: Iterable[Mapping[str, Any]]) -> int:
        """``record_predictions`` for the event loop: the rows are prepared and queued in the
        caller's thread, and committed by this recorder's writer thread, in the same groups.

        The loop never waits for a commit (another process's write lock, an ``fsync``), and the
        hop to the writer thread carries only the commit. Same errors as ``record_predictions``.
        """
        job = self._submit(rows, "prediction")
        if job.done:
            return job.count
        return await asyncio.get_running_loop().run_in_executor(self._writer(), self._flush, job)

    def record(self, entries: Iterable[Mapping[str, Any]], kind: str | None = None) -> int:
        """Audit ``entries`` (of ``kind``, if given, whatever they say), committed before returning; the count after them."""
        return self._flush(self._submit(entries, kind))

    def _submit(self, entries: Iterable[Mapping[str, Any]], kind: str | None = None) -> _Job:
        """Prepare ``entries`` (ValueError, nothing queued, for a bad one) and queue them for the next commit."""
        job = _Job(_Prepared(entries, None, kind))
        if not len(job.entries):
            job.done = True
            return job
        with self._queue_lock:
            self._queue.append(job)
        return job

    def _flush(self, job: _Job) -> int:
        """Return once ``job`` is committed (writing every queued job if no other thread is): its count after it."""
        with self._write_lock:
            if not job.done:
                with self._queue_lock:
                    jobs, self._queue = self._queue, []
                self._write(jobs)
        if job.error is not None:
            raise AuditUnavailable(str(job.error)) from None
        return job.count

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
                counts = _chain(conn, [job.entries for job in jobs])
            for job, count in zip(jobs, counts, strict=True):
                job.count = count
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


@dataclass
class Report:
    """What ``verify`` found: ``ok`` and, if not, the first broken row and why (French)."""

    rows: int
    head_hash: str
    ok: bool = True
    first_bad_seq: int | None = None
    problems: list[str] = field(default_factory=list)

    def text(self) -> str:
        if self.ok:
            return (
                f"Journal d'audit intègre : {self.rows} ligne(s), chaîne de hachage vérifiée.\n"
                f"Empreinte de tête (à conserver hors du serveur) : {self.head_hash}"
            )
        where = f" ; première ligne en cause : n° {self.first_bad_seq}" if self.first_bad_seq else ""
        return "Journal d'audit ALTÉRÉ" + where + ".\n" + "\n".join(f"- {p}" for p in self.problems)


def verify(path: str | os.PathLike | None = None, anchor: str | None = None) -> Report:
    """Recompute the whole chain and compare it with the stored hashes and the head.

    Detects an edited row (its hash no longer matches its content), an inserted or
    deleted row (the next row's ``prev_hash``, or a gap in the sequence), and a
    truncated tail (``chain_head`` says more rows, or another head). ``anchor`` is a
    head hash kept elsewhere: the chain must contain it.
    """
    conn = connect(path)
    try:
        stored = conn.execute("SELECT count, head_hash FROM chain_head WHERE id = 1").fetchone()
        report = Report(rows=0, head_hash=GENESIS)
        prev, expected_seq, anchored = GENESIS, 1, anchor is None or anchor == GENESIS

        def bad(seq: int | None, message: str) -> None:
            if report.ok:
                report.first_bad_seq = seq
            report.ok = False
            if len(report.problems) < 20:
                report.problems.append(message)

        for row in conn.execute(f"SELECT {', '.join(COLUMNS)} FROM audit ORDER BY seq"):
            seq = row["seq"]
            report.rows += 1
            if seq != expected_seq:
                bad(seq, f"ligne n° {seq} : numéro attendu {expected_seq} (ligne supprimée ou insérée avant elle)")
            if row["prev_hash"] != prev:
                bad(seq, f"ligne n° {seq} : ne suit pas la ligne précédente (ligne supprimée ou insérée avant elle)")
            if row_hash(row["prev_hash"], dict(row)) != row["row_hash"]:
                bad(seq, f"ligne n° {seq} : contenu modifié (son empreinte ne correspond plus)")
            prev, expected_seq = row["row_hash"], seq + 1
            anchored = anchored or prev == anchor
        report.head_hash = prev
        if (report.rows, prev) != (stored["count"], stored["head_hash"]):
            # Name the row where the trail and its head part: the first missing, the first extra, or the last.
            count = stored["count"]
            if report.rows < count:
                seq, why = report.rows + 1, f"ligne n° {report.rows + 1} et suivantes supprimées, ou tête modifiée"
            elif report.rows > count:
                seq, why = count + 1, f"ligne n° {count + 1} et suivantes ajoutées sans la tête, ou tête modifiée"
            else:
                seq, why = report.rows, f"ligne n° {report.rows} remplacée, ou tête modifiée"
            bad(seq, f"tête de chaîne : {count} ligne(s) enregistrée(s), {report.rows} présente(s) ({why})")
        if not anchored:
            bad(None, f"l'empreinte d'ancrage {anchor[:16]}… n'apparaît pas dans la chaîne")
        return report
    finally:
        conn.close()


def _utc(value: str | datetime | None) -> str | None:
    """An ISO time (or datetime) as the UTC ISO text stored in ``at``; naive times are UTC."""
    if value is None:
        return None
    moment = value if isinstance(value, datetime) else datetime.fromisoformat(str(value))
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).isoformat(timespec="milliseconds")


def query(
    path: str | os.PathLike | None = None,
    user: str | None = None,
    model_version: str | None = None,
    since: str | datetime | None = None,
    until: str | datetime | None = None,
    kind: str | None = None,
    limit: int = 100,
    offset: int = 0,
) -> list[dict[str, Any]]:
    """Audit rows matching the filters, oldest first; ``since`` inclusive, ``until`` exclusive.

    ``inputs`` and ``details`` come back decoded. Raises ValueError (French) on a bad time.
    """
    clauses, params = [], []
    for column, value in (("actor", user), ("model_version", model_version), ("kind", kind)):
        if value is not None:
            clauses.append(f"{column} = ?")
            params.append(value)
    try:
        bounds = (("at >= ?", _utc(since)), ("at < ?", _utc(until)))
    except ValueError:
        raise ValueError("date invalide : attendu le format ISO 8601, par exemple 2026-01-05T10:00:00Z") from None
    for clause, value in bounds:
        if value is not None:
            clauses.append(clause)
            params.append(value)
    where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
    limit = max(0, min(int(limit), MAX_QUERY_ROWS))
    conn = connect(path)
    try:
        cursor = conn.execute(
            f"SELECT {', '.join(COLUMNS)} FROM audit {where} ORDER BY seq LIMIT ? OFFSET ?",
            (*params, limit, max(0, int(offset))),
        )
        rows = [dict(row) for row in cursor]
    finally:
        conn.close()
    for row in rows:
        for name in ("inputs", "details"):
            if row[name] is not None:
                row[name] = json.loads(row[name])
    return rows


def to_csv(rows: Iterable[Mapping[str, Any]]) -> str:
    """The rows of ``query`` as CSV text (``;``-separated, like the inference log), JSON columns as text."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, delimiter=";", lineterminator="\n")
    writer.writerow(COLUMNS)
    for row in rows:
        writer.writerow(
            [canonical(row[c]) if c in ("inputs", "details") and row[c] is not None else row[c] for c in COLUMNS]
        )
    return buffer.getvalue()


def recent_inputs(path: str | os.PathLike | None = None, limit: int = 1440) -> list[tuple[dict[str, float], str]]:
    """The last ``limit`` audited readings (inputs, decision), oldest first: to refill a drift window at start."""
    conn = connect(path)
    try:
        rows = conn.execute(
            "SELECT inputs, decision FROM audit WHERE kind = 'prediction' ORDER BY seq DESC LIMIT ?", (limit,)
        ).fetchall()
    finally:
        conn.close()
    return [(json.loads(r["inputs"]), r["decision"]) for r in reversed(rows)]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m stage4_prod.audit", description="Journal d'audit de l'étape 4.")
    sub = parser.add_subparsers(dest="command", required=True)
    check = sub.add_parser("verify", help="vérifie la chaîne de hachage (code de sortie 1 si elle est altérée)")
    check.add_argument("--db", default=None, help="base d'état (défaut : $STATE_DB ou state/stage4.sqlite)")
    check.add_argument("--ancre", default=None, help="empreinte de tête conservée ailleurs, qui doit figurer")
    export = sub.add_parser("export", help="écrit les lignes en CSV sur la sortie standard")
    export.add_argument("--db", default=None, help="base d'état (défaut : $STATE_DB ou state/stage4.sqlite)")
    export.add_argument("--utilisateur", default=None, help="nom de la clé d'API qui a agi")
    export.add_argument("--version-modele", default=None, help="version du modèle")
    export.add_argument("--depuis", default=None, help="date ISO 8601 (incluse)")
    export.add_argument("--jusqua", default=None, help="date ISO 8601 (exclue)")
    args = parser.parse_args(argv)
    try:
        if args.command == "verify":
            if not db_path(args.db).is_file():
                print(f"Aucun journal d'audit : {db_path(args.db)} n'existe pas.", file=sys.stderr)
                return 2
            report = verify(args.db, args.ancre)
            print(report.text(), file=sys.stdout if report.ok else sys.stderr)
            return 0 if report.ok else 1
        rows = query(args.db, args.utilisateur, args.version_modele, args.depuis, args.jusqua, limit=MAX_QUERY_ROWS)
        sys.stdout.write(to_csv(rows))
        return 0
    except (AuditUnavailable, ValueError) as exc:
        print(f"Erreur : {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
