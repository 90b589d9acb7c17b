"""common/shared_sqlite.py: each fast path gives what the plain way gives (a connection per call, BEGIN IMMEDIATE
under a busy timeout, one commit per caller, executemany)."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import time
from pathlib import Path

import pytest

from common.shared_sqlite import ROWS_PER_INSERT, GroupCommit, begin_immediate, insert_rows, thread_connection


class Ledger:
    """A store whose ``commit(works)`` is all or nothing and returns the length after each work."""

    def __init__(self, fail_on: object = None, pause_s: float = 0.0):
        self.rows: list[object] = []
        self.commits = 0
        self.fail_on, self.pause_s = fail_on, pause_s
        self.threads: set[str] = set()

    def commit(self, works: list[object]) -> list[int]:
        time.sleep(self.pause_s)  # a disk write: the callers that arrive meanwhile queue up
        self.threads.add(threading.current_thread().name)
        if self.fail_on in works:
            raise OSError("disque plein")
        self.commits += 1
        self.rows.extend(works)
        return list(range(len(self.rows) - len(works) + 1, len(self.rows) + 1))


def run_threads(call, works) -> dict:
    results = {}

    def one(work):
        try:
            results[work] = call(work)
        except OSError as exc:
            results[work] = exc

    pool = [threading.Thread(target=one, args=(w,)) for w in works]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join()
    return results


def test_each_caller_gets_what_one_commit_per_caller_gives_it_in_fewer_commits():
    plain, grouped = Ledger(pause_s=0.01), Ledger(pause_s=0.01)
    works = list(range(40))
    expected = run_threads(lambda w: plain.commit([w])[0], works)  # the reference: one commit per caller
    results = run_threads(GroupCommit(grouped.commit).run, works)
    assert sorted(grouped.rows) == sorted(plain.rows) == works  # every work written once
    assert sorted(results.values()) == sorted(expected.values()) == list(range(1, 41))
    assert all(grouped.rows[results[w] - 1] == w for w in works)  # each caller got its own position
    assert plain.commits == 40 and grouped.commits < 40


def test_a_failed_commit_refuses_each_caller_of_its_group_and_writes_none_of_it():
    ledger = Ledger(fail_on="bad")
    commits = GroupCommit(ledger.commit)
    assert commits.run("a") == 1
    with pytest.raises(OSError, match="disque plein"):
        commits.run("bad")
    assert commits.run("b") == 2 and ledger.rows == ["a", "b"]
    ledger.pause_s = 0.05
    results = run_threads(commits.run, ["bad", *range(10)])
    written = [w for w in range(10) if not isinstance(results[w], OSError)]
    assert ledger.rows == ["a", "b", *sorted(written, key=lambda w: results[w])]  # nothing of a failed group
    assert isinstance(results["bad"], OSError)


def test_run_async_commits_in_the_writer_thread():
    ledger = Ledger()
    commits = GroupCommit(ledger.commit, thread_name="ecrivain")

    async def calls():
        return await asyncio.gather(*(commits.run_async(w) for w in "xyz"))

    assert sorted(asyncio.run(calls())) == [1, 2, 3] and sorted(ledger.rows) == ["x", "y", "z"]
    assert all(name.startswith("ecrivain") for name in ledger.threads)
    commits.close()


def plain(path: Path) -> sqlite3.Connection:
    return sqlite3.connect(path, isolation_level=None, timeout=0.3)


def test_a_threads_connection_reads_what_a_new_one_reads_and_follows_a_replaced_file(tmp_path):
    path = tmp_path / "s.sqlite"
    plain(path).execute("CREATE TABLE t (x)")
    kept = thread_connection(path, plain)
    count = "SELECT count(*) FROM t"
    for x in range(3):
        plain(path).execute("INSERT INTO t VALUES (?)", (x,))  # another process writes
        assert thread_connection(path, plain) is kept
        assert kept.execute(count).fetchall() == plain(path).execute(count).fetchall() == [(x + 1,)]
    others = []
    thread = threading.Thread(target=lambda: others.append(thread_connection(path, plain)))
    thread.start()
    thread.join()
    assert others[0] is not kept
    path.unlink()
    plain(path).execute("CREATE TABLE t (x)")  # a new file at the same place
    assert thread_connection(path, plain).execute(count).fetchall() == [(0,)]
    for i in range(5):
        thread_connection(tmp_path / f"{i}.sqlite", plain, keep=4)
    assert thread_connection(path, plain, keep=4) is not kept  # the least recent were closed


def test_begin_immediate_waits_for_the_lock_and_gives_up_as_the_busy_handler_does(tmp_path):
    path = tmp_path / "s.sqlite"
    reference, conn = plain(path), plain(path)
    blocker = sqlite3.connect(path, isolation_level=None, check_same_thread=False)  # released by a timer thread
    blocker.execute("BEGIN IMMEDIATE")
    with pytest.raises(sqlite3.OperationalError, match="locked"):
        reference.execute("BEGIN IMMEDIATE")  # the plain way, after its 0.3 s busy timeout
    start = time.monotonic()
    with pytest.raises(sqlite3.OperationalError, match="locked"):
        begin_immediate(conn, wait_s=0.3)
    assert 0.3 <= time.monotonic() - start < 2 and not conn.in_transaction
    assert conn.execute("PRAGMA busy_timeout").fetchone()[0] == 300  # restored
    threading.Timer(0.2, blocker.execute, ("COMMIT",)).start()
    begin_immediate(conn, wait_s=5)  # the lock is taken as soon as the other writer lets go
    assert conn.in_transaction
    conn.execute("COMMIT")


AUDIT_LIKE = "CREATE TABLE t (seq INTEGER PRIMARY KEY, name TEXT, score REAL, inputs TEXT, n INTEGER)"


def awkward_rows(count: int) -> list[tuple]:
    """Rows with what an audit row holds: texts with quotes and accents, floats, NULLs, large integers."""
    texts = ["", "l'opérateur", 'un "guillemet"', "ligne\nsuivante", "😀", None]
    floats = [0.0, -0.0, 5e-324, 1.7976931348623157e308, 0.1 + 0.2, None]
    return [(i + 1, texts[i % 6], floats[i % 6], f'{{"k":{i}}}', 2**62 - i if i % 3 else None) for i in range(count)]


@pytest.mark.parametrize("count", [0, 1, ROWS_PER_INSERT - 1, ROWS_PER_INSERT, ROWS_PER_INSERT + 1, 1234])
def test_insert_rows_writes_what_executemany_writes_in_a_few_statements(count):
    plain, fast = sqlite3.connect(":memory:"), sqlite3.connect(":memory:")
    for conn in (plain, fast):
        conn.execute(AUDIT_LIKE)
    rows = awkward_rows(count)
    plain.executemany("INSERT INTO t (seq, name, score, inputs, n) VALUES (?, ?, ?, ?, ?)", rows)
    statements: list[str] = []
    fast.set_trace_callback(statements.append)
    insert_rows(fast, "t", ("seq", "name", "score", "inputs", "n"), rows)
    fast.set_trace_callback(None)
    dump = "SELECT seq, name, score, typeof(score), inputs, n, typeof(n) FROM t ORDER BY seq"
    assert fast.execute(dump).fetchall() == plain.execute(dump).fetchall()
    inserts = [s for s in statements if s.startswith("INSERT")]
    assert len(inserts) <= count // ROWS_PER_INSERT + ROWS_PER_INSERT.bit_length()  # 1,234 rows: 7, not 1,234


def test_insert_rows_prepares_few_statements_whatever_the_batch_sizes():
    """The sqlite3 module keeps each statement it prepared: one per batch size would fill memory."""
    conn = sqlite3.connect(":memory:")
    conn.execute(AUDIT_LIKE)
    rows_per_statement: set[int] = set()

    def seen(sql: str) -> None:
        if sql.startswith("INSERT"):
            rows_per_statement.add(sql.count("), (") + 1)

    conn.set_trace_callback(seen)
    for count in range(1, 3 * ROWS_PER_INSERT):
        insert_rows(conn, "t", ("seq", "name", "score", "inputs", "n"), [(None, "a", 0.5, "{}", 1)] * count)
    assert rows_per_statement == {ROWS_PER_INSERT, *(2**i for i in range(9))}  # 500, then 1, 2, 4 ... 256 rows


def test_insert_rows_refuses_a_row_of_the_wrong_width_before_writing_and_stays_under_the_parameter_limit():
    conn = sqlite3.connect(":memory:")
    conn.execute(AUDIT_LIKE)
    bad = [*awkward_rows(ROWS_PER_INSERT + 1), (0, "court", 0.5, "{}")]  # the short row in the second statement
    with pytest.raises(sqlite3.ProgrammingError):
        insert_rows(conn, "t", ("seq", "name", "score", "inputs", "n"), bad)
    assert conn.execute("SELECT count(*) FROM t").fetchone() == (0,)  # none written
    conn.setlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER, 12)  # two rows of five per statement at most
    insert_rows(conn, "t", ("seq", "name", "score", "inputs", "n"), awkward_rows(7))
    assert conn.execute("SELECT count(*) FROM t").fetchone() == (7,)
