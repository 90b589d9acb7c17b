"""The audit trail: chained rows, tamper detection, appends from several processes, queries, feedback."""

from __future__ import annotations

import csv
import io
import json
import multiprocessing
import sqlite3
import threading
import time
from collections import Counter
from pathlib import Path

import pytest

from stage4_prod import audit, feedback, state

READING = {
    "accelerometer1_rms": 0.027,
    "accelerometer2_rms": 0.04,
    "current": 1.2,
    "pressure": 0.055,
    "temperature": 71.0,
    "thermocouple": 25.4,
    "voltage": 230.0,
    "volume_flow_rate_rms": 32.0,
}


def prediction(i: int, actor: str = "atelier", version: str = "1.0.0", decision: str = "Normal", **extra) -> dict:
    return {
        "actor": actor,
        "request_id": f"req-{i}",
        "source": "api",
        "equipment_id": "pompe-01",
        "inputs": READING,
        "score": 0.4 + i / 1000,
        "decision": decision,
        "model_version": version,
        "client": "127.0.0.1",
        **extra,
    }


@pytest.fixture
def db(tmp_path):
    path = tmp_path / "state.sqlite"
    conn = audit.connect(path)
    audit.record_predictions(conn, [prediction(i) for i in range(1, 6)])
    audit.record_action(conn, "deploy", "admin", {"version": "1.1.0"}, model_version="1.1.0")
    audit.record_predictions(conn, [prediction(i, version="1.1.0") for i in range(6, 11)])
    conn.close()
    return path


def raw(path) -> sqlite3.Connection:
    return sqlite3.connect(path, isolation_level=None)


def test_rows_are_chained_and_verify(db):
    report = audit.verify(db)
    assert report.ok and report.rows == 11
    rows = audit.query(db, limit=100)
    assert [r["seq"] for r in rows] == list(range(1, 12))
    assert rows[0]["prev_hash"] == audit.GENESIS
    for before, after in zip(rows, rows[1:], strict=False):
        assert after["prev_hash"] == before["row_hash"]
    assert rows[0]["inputs"] == READING and rows[0]["app_version"] == "4.0.0"
    assert rows[5]["kind"] == "deploy" and rows[5]["details"] == {"version": "1.1.0"}
    assert report.head_hash == rows[-1]["row_hash"]


def test_a_batch_is_one_transaction(tmp_path):
    conn = audit.connect(tmp_path / "s.sqlite")
    rows = [prediction(1), prediction(2), {**prediction(3), "score": float("nan")}]
    with pytest.raises(ValueError):
        audit.record_predictions(conn, rows)
    assert audit.query(tmp_path / "s.sqlite") == []  # neither of the two valid rows was written
    assert audit.verify(tmp_path / "s.sqlite").ok


def test_edited_row_is_detected(db):
    raw(db).execute("UPDATE audit SET score = 0.01 WHERE seq = 4")
    report = audit.verify(db)
    assert not report.ok and report.first_bad_seq == 4
    assert "contenu modifié" in report.text() and "n° 4" in report.text()


def test_edited_row_with_recomputed_hash_breaks_the_next_link(db):
    conn = raw(db)
    conn.row_factory = sqlite3.Row
    row = dict(conn.execute("SELECT * FROM audit WHERE seq = 4").fetchone())
    row["decision"] = "Anomalie"
    conn.execute(
        "UPDATE audit SET decision = ?, row_hash = ? WHERE seq = 4", ("Anomalie", audit.row_hash(row["prev_hash"], row))
    )
    report = audit.verify(db)
    assert not report.ok and report.first_bad_seq == 5


def test_deleted_middle_row_is_detected(db):
    raw(db).execute("DELETE FROM audit WHERE seq = 3")
    report = audit.verify(db)
    assert not report.ok and report.first_bad_seq == 4
    assert "supprimée ou insérée" in report.text()


def test_inserted_row_is_detected(db):
    conn = raw(db)
    conn.row_factory = sqlite3.Row
    for seq in range(11, 2, -1):  # make room at 3, as a careful forger would
        conn.execute("UPDATE audit SET seq = seq + 1 WHERE seq = ?", (seq,))
    prev = conn.execute("SELECT row_hash FROM audit WHERE seq = 2").fetchone()[0]
    forged = {**audit._entries([prediction(99, actor="intrus")], "prediction")[0], "at": audit.now_iso(), "seq": 3}
    forged["prev_hash"], forged["row_hash"] = prev, audit.row_hash(prev, forged)
    conn.execute(
        f"INSERT INTO audit ({', '.join(audit.COLUMNS)}) VALUES ({', '.join('?' * len(audit.COLUMNS))})",
        [forged[c] for c in audit.COLUMNS],
    )
    report = audit.verify(db)
    assert not report.ok and report.first_bad_seq == 4  # the moved row's seq is part of its hash


def test_forged_row_appended_without_the_head_is_detected(db):
    conn = raw(db)
    prev = conn.execute("SELECT row_hash FROM audit WHERE seq = 11").fetchone()[0]
    forged = {**audit._entries([prediction(99)], "prediction")[0], "at": audit.now_iso(), "seq": 12}
    forged["prev_hash"], forged["row_hash"] = prev, audit.row_hash(prev, forged)
    conn.execute(
        f"INSERT INTO audit ({', '.join(audit.COLUMNS)}) VALUES ({', '.join('?' * len(audit.COLUMNS))})",
        [forged[c] for c in audit.COLUMNS],
    )
    report = audit.verify(db)
    assert not report.ok and "tête de chaîne" in report.text()


def test_truncated_tail_is_detected(db):
    raw(db).execute("DELETE FROM audit WHERE seq >= 10")
    report = audit.verify(db)
    assert not report.ok and report.first_bad_seq == 10
    assert "11 ligne(s) enregistrée(s), 9 présente(s)" in report.text()


def test_anchor_kept_elsewhere_detects_a_rewritten_chain(db, tmp_path):
    anchor = audit.verify(db).head_hash
    assert audit.verify(db, anchor=anchor).ok
    other = tmp_path / "rewritten.sqlite"  # a whole new, self-consistent chain
    audit.record_predictions(audit.connect(other), [prediction(1)])
    report = audit.verify(other, anchor=anchor)
    assert not report.ok and "ancrage" in report.text()


def test_verify_cli_exit_codes_and_french_report(db, capsys):
    assert audit.main(["verify", "--db", str(db)]) == 0
    assert "Journal d'audit intègre : 11 ligne(s)" in capsys.readouterr().out
    raw(db).execute("UPDATE audit SET actor = 'quelqu-un' WHERE seq = 7")
    assert audit.main(["verify", "--db", str(db)]) == 1
    err = capsys.readouterr().err
    assert "ALTÉRÉ" in err and "première ligne en cause : n° 7" in err
    assert audit.main(["verify", "--db", str(db.parent / "absent.sqlite")]) == 2


def _append_many(path: str, worker: int, batches: int) -> None:
    conn = audit.connect(path)
    for b in range(batches):
        audit.record_predictions(conn, [prediction(1000 * worker + 10 * b + k, actor=f"w{worker}") for k in range(3)])
    conn.close()


def _run_processes(target, args: list[tuple], timeout_s: float) -> None:
    """Run ``target`` in one fresh process per ``args`` entry, all at once; each must exit 0."""
    context = multiprocessing.get_context("spawn")
    workers = [context.Process(target=target, args=a) for a in args]
    for p in workers:
        p.start()
    for p in workers:
        p.join(timeout_s)
        assert p.exitcode == 0


def test_appends_from_several_processes_keep_one_chain(tmp_path):
    path = str(tmp_path / "shared.sqlite")
    audit.connect(path).close()
    _run_processes(_append_many, [(path, w, 40) for w in range(4)], timeout_s=60)
    report = audit.verify(path)
    assert report.ok, report.text()
    assert report.rows == 4 * 40 * 3
    for w in range(4):
        assert len(audit.query(path, user=f"w{w}", limit=1000)) == 120


def _record_grouped(path: str, worker: int, threads: int, calls: int) -> None:
    """``threads`` threads of one process, each auditing ``calls`` requests of 1 to 3 rows through one Recorder."""
    recorder = audit.Recorder(path)

    def run(t: int) -> None:
        for c in range(calls):
            rows = [prediction(k, actor=f"w{worker}", request_id=f"w{worker}-t{t}-c{c}") for k in range(1 + c % 3)]
            recorder.record_predictions(rows)

    pool = [threading.Thread(target=run, args=(t,)) for t in range(threads)]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join()
    recorder.close()


def test_group_commit_from_threads_of_several_processes_keeps_every_row_once_and_one_chain(tmp_path):
    path = str(tmp_path / "shared.sqlite")
    audit.connect(path).close()
    _run_processes(_record_grouped, [(path, w, 8, 30) for w in range(2)], timeout_s=120)
    report = audit.verify(path)
    assert report.ok, report.text()
    rows = audit.query(path, limit=audit.MAX_QUERY_ROWS)
    per_request = Counter(r["request_id"] for r in rows)
    assert len(per_request) == 2 * 8 * 30  # every request audited...
    assert all(per_request[f"w{w}-t{t}-c{c}"] == 1 + c % 3 for w in range(2) for t in range(8) for c in range(30))


def test_callers_waiting_together_share_one_transaction_and_each_gets_its_own_rows(tmp_path, monkeypatch):
    path = tmp_path / "s.sqlite"
    recorder = audit.Recorder(path)
    recorder.record_predictions([prediction(0)])
    transactions = []
    real_transaction = audit.transaction

    def counted(conn, **options):
        transactions.append(1)
        return real_transaction(conn, **options)

    monkeypatch.setattr(audit, "transaction", counted)
    blocker = raw(path)
    blocker.execute("BEGIN IMMEDIATE")  # another process writing: the first caller waits for it
    counts = {}

    def call(i: int) -> None:
        counts[i] = recorder.record_predictions([prediction(i, request_id=f"r{i}")])

    pool = [threading.Thread(target=call, args=(i,)) for i in range(1, 6)]
    pool[0].start()
    time.sleep(0.3)  # the first caller holds the process's write lock, waiting for SQLite's
    for thread in pool[1:]:
        thread.start()
    time.sleep(0.3)  # the four others have queued their rows behind it
    blocker.execute("COMMIT")
    for thread in pool:
        thread.join()
    assert len(transactions) == 2  # five callers, two commits: the first alone, then the four together
    rows = {r["request_id"]: r for r in audit.query(path)}
    assert counts[1] == 2 and sorted(counts.values()) == [2, 3, 4, 5, 6]
    assert all(rows[f"r{i}"]["seq"] == counts[i] for i in range(1, 6))  # each got the count after its own row
    assert audit.verify(path).ok


def test_a_failed_group_refuses_each_of_its_callers_and_the_next_one_writes(tmp_path):
    path = tmp_path / "s.sqlite"
    recorder = audit.Recorder(path)
    recorder.record_predictions([prediction(1)])
    raw(path).execute("CREATE TRIGGER full BEFORE INSERT ON audit BEGIN SELECT RAISE(ABORT, 'disk full'); END")
    with pytest.raises(audit.AuditUnavailable, match="indisponible"):
        recorder.record_predictions([prediction(2)])
    with pytest.raises(ValueError):  # a bad row is refused to its caller alone, before anything is queued
        recorder.record_predictions([{**prediction(3), "score": float("nan")}])
    raw(path).execute("DROP TRIGGER full")
    assert recorder.record_predictions([prediction(4)]) == 2
    assert [r["request_id"] for r in audit.query(path)] == ["req-1", "req-4"] and audit.verify(path).ok


def test_a_writer_locked_out_beyond_the_timeout_is_refused_and_writes_nothing(tmp_path, monkeypatch):
    path = tmp_path / "s.sqlite"
    recorder = audit.Recorder(path)
    recorder.record_predictions([prediction(1)])
    monkeypatch.setattr(state, "BUSY_TIMEOUT_MS", 300)
    blocker = raw(path)
    blocker.execute("BEGIN IMMEDIATE")  # another process that never lets go
    with pytest.raises(audit.AuditUnavailable, match="indisponible en écriture"):
        recorder.record_predictions([prediction(2)])
    blocker.execute("ROLLBACK")
    assert recorder.record_predictions([prediction(3)]) == 2
    assert [r["request_id"] for r in audit.query(path)] == ["req-1", "req-3"] and audit.verify(path).ok


def test_recorder_follows_a_replaced_state_file(tmp_path):
    path = tmp_path / "s.sqlite"
    recorder = audit.Recorder(path)
    recorder.record_predictions([prediction(1)])
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    recorder.record_predictions([prediction(2)])  # not into the deleted file
    assert [r["request_id"] for r in audit.query(path)] == ["req-2"]


def test_reader_connection_is_kept_per_thread_sees_other_writers_and_follows_a_replaced_file(tmp_path):
    path = tmp_path / "s.sqlite"
    audit.record_predictions(audit.connect(path), [prediction(1)])
    conn = state.reader(path)
    assert state.reader(path) is conn
    count = "SELECT count FROM chain_head"
    assert conn.execute(count).fetchall()[0][0] == 1
    audit.record_predictions(audit.connect(path), [prediction(2)])  # another connection (another process)
    assert conn.execute(count).fetchall()[0][0] == 2
    others = []
    thread = threading.Thread(target=lambda: others.append(state.reader(path)))
    thread.start()
    thread.join()
    assert others[0] is not conn
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    assert state.reader(path) is not conn
    assert state.reader(path).execute(count).fetchall()[0][0] == 0


def test_synchronous_mode_comes_from_audit_sync(tmp_path, monkeypatch):
    monkeypatch.delenv("AUDIT_SYNC", raising=False)
    assert audit.connect(tmp_path / "a.sqlite").execute("PRAGMA synchronous").fetchone()[0] == 1  # NORMAL
    monkeypatch.setenv("AUDIT_SYNC", "full")
    assert audit.connect(tmp_path / "b.sqlite").execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
    monkeypatch.setenv("AUDIT_SYNC", "OFF")  # OFF could lose acknowledged rows on a crash: refused
    with pytest.raises(audit.AuditUnavailable, match="inutilisable : .*AUDIT_SYNC : « OFF » refusé : valeurs admises"):
        audit.connect(tmp_path / "c.sqlite")


def test_unwritable_trail_raises_and_writes_nothing(db):
    # As root, file permissions do not stop SQLite: a trigger refusing inserts stands for a full disk.
    raw(db).execute("CREATE TRIGGER full BEFORE INSERT ON audit BEGIN SELECT RAISE(ABORT, 'disk full'); END")
    conn = audit.connect(db)
    with pytest.raises(audit.AuditUnavailable, match="indisponible"):
        audit.record_predictions(conn, [prediction(50)])
    assert not conn.in_transaction
    raw(db).execute("DROP TRIGGER full")
    assert audit.verify(db).ok and audit.verify(db).rows == 11


def test_unopenable_database_raises(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    with pytest.raises(audit.AuditUnavailable, match="inutilisable"):
        audit.connect(blocker / "state.sqlite")


def test_query_filters_and_csv(db):
    assert len(audit.query(db, model_version="1.1.0", kind="prediction")) == 5
    assert len(audit.query(db, user="admin")) == 1
    assert [r["seq"] for r in audit.query(db, limit=3, offset=2)] == [3, 4, 5]
    all_rows = audit.query(db)
    middle = all_rows[5]["at"]
    assert all(r["at"] >= middle for r in audit.query(db, since=middle))
    assert audit.query(db, until="2000-01-01T00:00:00Z") == []
    assert len(audit.query(db, since="2000-01-01")) == 11  # naive times are UTC
    with pytest.raises(ValueError, match="date invalide"):
        audit.query(db, since="hier")
    text = audit.to_csv(audit.query(db, user="atelier"))
    lines = text.strip().split("\n")
    assert lines[0].split(";") == list(audit.COLUMNS) and len(lines) == 11
    first = next(csv.DictReader(io.StringIO(text), delimiter=";"))
    assert json.loads(first["inputs"]) == READING and first["actor"] == "atelier"


def test_recent_inputs_for_the_drift_window(db):
    recent = audit.recent_inputs(db, limit=3)
    assert [d for _, d in recent] == ["Normal"] * 3 and recent[-1][0] == READING


# --- feedback ---------------------------------------------------------------------------


@pytest.fixture
def alarms(tmp_path):
    path = tmp_path / "fb.sqlite"
    conn = audit.connect(path)
    audit.record_predictions(conn, [prediction(1, decision="Anomalie"), prediction(2)])
    audit.record_predictions(
        conn, [prediction(3, version="1.1.0", decision="Anomalie", at="2026-01-05T10:00:00.000+00:00")]
    )
    audit.record_predictions(conn, [prediction(4, version="1.1.0", decision="Anomalie")])
    conn.close()
    return path


def test_feedback_confirms_rejects_and_counts_per_version(alarms):
    assert feedback.record(alarms, "confirmed", "tech", request_id="req-1")["model_version"] == "1.0.0"
    feedback.record(alarms, "rejected", "tech", request_id="req-3")
    feedback.record(alarms, "confirmed", "tech", request_id="req-3", comment="vu sur place")  # replaces
    feedback.record(alarms, "rejected", "tech", request_id="req-4")
    feedback.record(alarms, "missed", "tech", equipment_id="pompe-01", fault_at="2026-01-05T11:00:00Z")
    summary = feedback.summary(alarms)
    assert summary["1.0.0"] == {
        "alarms": 1,
        "confirmed": 1,
        "rejected": 0,
        "missed": 0,
        "reviewed": 1,
        "confirmed_share": 1.0,
    }
    assert summary["1.1.0"]["alarms"] == 2 and summary["1.1.0"]["confirmed"] == 1
    assert summary["1.1.0"]["rejected"] == 1 and summary["1.1.0"]["confirmed_share"] == 0.5
    assert summary["1.1.0"]["missed"] == 1  # charged to the version that scored pompe-01 before 11:00
    assert audit.verify(alarms).ok
    assert len(audit.query(alarms, kind="feedback")) == 5


def test_feedback_refusals_are_french_with_a_status(alarms):
    with pytest.raises(feedback.FeedbackError, match="aucune prédiction") as exc:
        feedback.record(alarms, "confirmed", "tech", request_id="inconnue")
    assert exc.value.status == 404
    with pytest.raises(feedback.FeedbackError, match="aucune alarme") as exc:
        feedback.record(alarms, "confirmed", "tech", request_id="req-2")
    assert exc.value.status == 409
    with pytest.raises(feedback.FeedbackError, match="verdict"):
        feedback.record(alarms, "peut-être", "tech", request_id="req-1")
    with pytest.raises(feedback.FeedbackError, match="fault_at"):
        feedback.record(alarms, "missed", "tech", equipment_id="pompe-01", fault_at="demain")
    assert feedback.summary(alarms)["1.0.0"]["reviewed"] == 0


TRICKY = [1e-7, 1e16, -0.0, 0.0, 0.1 + 0.2, 2.0**53 + 1, 5e-324, 1 / 3, 123456789.0, 7, 2**70, True]


def tricky_rows(n: int) -> list[dict]:
    rows = []
    for i in range(n):
        inputs = {name: TRICKY[(i + k) % len(TRICKY)] for k, name in enumerate(READING)}
        inputs["timestamp"] = f"2026-01-05T10:00:{i % 60:02d}"
        client = [None, "127.0.0.1", 'a "b"\n'][i % 3]
        rows.append({**prediction(i, actor="atelier é", decision=["Normal", "Anomalie"][i % 2]), "inputs": inputs})
        equipment = ["pompe-01", "pompe \u00e9\u2028", "x\\y"][i % 3]
        rows[-1].update(client=client, equipment_id=equipment, score=TRICKY[i % 9] or 0.5)  # SQLite reads -0.0 as 0.0
    rows.append({**prediction(n), "inputs": {"b": [1, {"z": -0.0}], "a": None}})  # not the batch's keys
    rows.append({**prediction(n + 1), "inputs": {}})
    rows.append({**prediction(n + 2), "inputs": '{"déjà":"écrit"}'})  # already JSON text: stored as it is
    return rows


def test_json_columns_are_stored_as_their_canonical_json_and_every_row_verifies(tmp_path):
    rows = tricky_rows(40)
    recorder = audit.Recorder(tmp_path / "state.sqlite")
    try:
        recorder.record_predictions(rows)
    finally:
        recorder.close()
    conn = audit.connect(tmp_path / "state.sqlite")
    audit.record_action(conn, "deploy", "admin", {"version": "1.1.0", "notes": ["é", 1.5, None, {"b": 1, "a": 2}]})
    conn.close()
    assert audit.verify(tmp_path / "state.sqlite").ok  # every row_hash is row_hash(prev_hash, content)
    texts = raw(tmp_path / "state.sqlite").execute("SELECT inputs FROM audit ORDER BY seq").fetchall()
    assert [t for (t,) in texts[: len(rows)]] == [
        r["inputs"] if isinstance(r["inputs"], str) else audit.canonical(r["inputs"]) for r in rows
    ]
