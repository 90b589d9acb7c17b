"""The state database: one SQLite file (WAL, so that reads never wait for a writer) shared by every worker
and command of stage 4: API keys, audit trail, served-model pointer, maintenance verdicts.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

from common.shared_sqlite import begin_immediate, thread_connection

from .settings import get_settings

BUSY_TIMEOUT_MS = 5000  # a writer waits this long for another process's transaction before failing
GENESIS = "0" * 64  # the audit chain's head before its first row

SCHEMA = f"""
CREATE TABLE IF NOT EXISTS api_keys (
    key_id TEXT PRIMARY KEY, name TEXT NOT NULL, role TEXT NOT NULL, key_hash TEXT NOT NULL,
    created_at TEXT NOT NULL, created_by TEXT NOT NULL, revoked_at TEXT, revoked_by TEXT
);
CREATE TABLE IF NOT EXISTS audit (
    seq INTEGER PRIMARY KEY, kind TEXT NOT NULL, at TEXT NOT NULL, actor TEXT NOT NULL,
    request_id TEXT, source TEXT, equipment_id TEXT, inputs TEXT, score REAL, decision TEXT,
    model_version TEXT, app_version TEXT NOT NULL, client TEXT, details TEXT,
    prev_hash TEXT NOT NULL, row_hash TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS audit_request ON audit (request_id);
CREATE INDEX IF NOT EXISTS audit_actor_at ON audit (actor, at);
CREATE INDEX IF NOT EXISTS audit_at ON audit (at);
CREATE TABLE IF NOT EXISTS chain_head (
    id INTEGER PRIMARY KEY CHECK (id = 1), count INTEGER NOT NULL, head_hash TEXT NOT NULL
);
INSERT OR IGNORE INTO chain_head (id, count, head_hash) VALUES (1, 0, '{GENESIS}');
CREATE TABLE IF NOT EXISTS deployment (
    id INTEGER PRIMARY KEY, version TEXT NOT NULL, previous_version TEXT,
    action TEXT NOT NULL, deployed_at TEXT NOT NULL, by TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS feedback (
    id INTEGER PRIMARY KEY, audit_seq INTEGER UNIQUE, verdict TEXT NOT NULL, model_version TEXT NOT NULL,
    request_id TEXT, equipment_id TEXT, fault_at TEXT, comment TEXT, at TEXT NOT NULL, by TEXT NOT NULL
);
"""


class AuditUnavailable(Exception):
    """The state database, hence the audit trail, cannot be used: the caller answers 503, never the prediction."""


class Refused(ValueError):
    """A change a user asked for was refused: a French message and the HTTP ``status`` errors.py answers with."""

    def __init__(self, message: str, status: int = 422):
        super().__init__(message)
        self.status = status


def db_path(path: str | os.PathLike | None = None) -> Path:
    return Path(path) if path else get_settings().state_db


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


_ready: dict[Path, str] = {}  # file -> its PRAGMA synchronous, once this process created its tables


def connect(path: str | os.PathLike | None = None) -> sqlite3.Connection:
    """A new autocommit connection (writers open ``transaction``); the tables are created once per process and file
    (and AUDIT_SYNC read then only: the settings cost milliseconds)."""
    target = db_path(path)
    conn = None
    try:
        known = _ready.get(target.resolve()) if target.exists() else None
        sync = known or get_settings().audit_sync
        target.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(target, timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None)
        conn.row_factory = sqlite3.Row
        if conn.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
            conn.execute("PRAGMA journal_mode = WAL")  # persistent: set once per file
        conn.execute(f"PRAGMA synchronous = {sync}")
        if known is None:
            conn.executescript(SCHEMA)
            _ready[target.resolve()] = sync
    except (OSError, sqlite3.Error, ValueError) as exc:
        if conn is not None:
            conn.close()
        raise AuditUnavailable(f"base d'état {target} inutilisable : {exc}") from None
    return conn


def reader(path: str | os.PathLike | None = None) -> sqlite3.Connection:
    """This thread's open connection: autocommit, so each statement sees the last commit of any process
    (a revoked key is refused on the next request). Do not close it."""
    return thread_connection(db_path(path), connect)


@contextmanager
def transaction(conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """``BEGIN IMMEDIATE`` ... ``COMMIT``: one writer at a time across processes, so what it read (the chain's head,
    the pointer) is still true when it commits. A change and its audit row share one."""
    try:
        begin_immediate(conn, BUSY_TIMEOUT_MS / 1000)
        yield conn
        conn.execute("COMMIT")
    except BaseException as exc:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        if isinstance(exc, sqlite3.Error):
            raise AuditUnavailable(f"journal d'audit indisponible en écriture : {exc}") from None
        raise
