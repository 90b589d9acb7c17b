"""A trail written by an earlier version of the code still verifies, grows, and is written the same way today.

``data/old_trail.sql`` is the trail ``data/trail.py`` wrote with the code of commit 05fe38e,
whose rows were prepared column by column (canonical JSON cut and filled in, floats written
by ``float_texts``). The rows are the audit trail's evidence: the code that writes them may
change, the bytes they store and hash may not.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from stage4_prod import audit
from tests.stage4_prod.data.trail import tricky_predictions, write_trail

OLD_TRAIL = Path(__file__).parent / "data" / "old_trail.sql"
OLD_ROWS = 55


@pytest.fixture
def old_db(tmp_path) -> Path:
    path = tmp_path / "old.sqlite"
    conn = sqlite3.connect(path)
    conn.executescript(OLD_TRAIL.read_text(encoding="utf-8"))
    conn.close()
    return path


def rows(path: Path) -> list[tuple]:
    conn = sqlite3.connect(path)
    try:
        return conn.execute(f"SELECT {', '.join(audit.COLUMNS)} FROM audit ORDER BY seq").fetchall()
    finally:
        conn.close()


def test_a_trail_written_by_the_earlier_code_verifies(old_db):
    report = audit.verify(old_db)
    assert report.ok, report.text()
    assert report.rows == OLD_ROWS


def test_the_same_calls_store_the_same_bytes_and_hashes_as_the_earlier_code(old_db, tmp_path):
    new_db = tmp_path / "new.sqlite"
    write_trail(new_db)
    old, new = rows(old_db), rows(new_db)
    assert len(new) == len(old) == OLD_ROWS
    for before, now in zip(old, new, strict=True):
        assert now == before  # every column, the JSON texts and both hashes included
    assert audit.verify(new_db).head_hash == audit.verify(old_db).head_hash


def test_the_current_code_extends_an_earlier_trail_and_the_whole_chain_verifies(old_db):
    anchor = audit.verify(old_db).head_hash
    recorder = audit.Recorder(old_db)
    try:
        assert recorder.record_predictions(tricky_predictions(5)) == OLD_ROWS + 7
    finally:
        recorder.close()
    conn = audit.connect(old_db)
    audit.record_action(conn, "rollback", "admin", {"from": "1.1.0", "to": "1.0.0"}, model_version="1.0.0")
    conn.close()
    report = audit.verify(old_db, anchor=anchor)
    assert report.ok and report.rows == OLD_ROWS + 8, report.text()
