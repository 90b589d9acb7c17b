"""Tampering, as one table per target: the audit trail (``make audit-verify``) and the model registry.

Audit trail: a real trail (start, key creation, predictions, feedback) is damaged in one
way per case, then checked with the very command ``make audit-verify`` runs, in its own
process. Every alteration must give exit code 1 and a French report naming the first
row at fault (or the anchor, for a chain rewritten whole). One case is a known limit,
kept in the table so that the figure stays honest: rows appended *with* the head moved
look exactly like the service's own appends.

Model registry: one version is damaged in one way per case; loading it must be refused
with a French message, and stage 4 must refuse to deploy it while the served version
keeps answering. A version damaged on disk while it is served keeps being served from
memory; a restart then refuses to serve it (503 in French, no crash).

Unit tests of each mechanism: tests/stage4_prod/test_audit.py, test_deployment.py,
tests/common/test_registry.py.
"""

from __future__ import annotations

import json
import re
import shutil
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient

from common.registry import RegistryError, load
from common.schema import EXAMPLE_READING
from stage4_prod import audit, auth, deployment
from stage4_prod.app import app
from tests.hardening.live import ROOT, LiveServer
from tests.stage4_prod.test_audit import prediction

ROWS = 12  # rows of the trail built below


def build_trail(db: Path) -> None:
    """1 first start, 2 key creation, 3-7 a batch of predictions, 8 feedback, 9-12 predictions."""
    deployment.initialize(db, "1.0.0")
    auth.create_key(db, "atelier", "operator", by="admin")
    conn = audit.connect(db)
    audit.record_predictions(conn, [prediction(i) for i in range(3, 8)])
    audit.record_action(conn, "feedback", "atelier", {"verdict": "confirmed", "request_id": "req-5"})
    audit.record_predictions(conn, [prediction(i, decision="Anomalie") for i in range(9, 13)])
    conn.close()


# ---- how the trail is damaged ---------------------------------------------------------------------


def row(db: sqlite3.Connection, seq: int) -> dict:
    return dict(db.execute("SELECT * FROM audit WHERE seq = ?", (seq,)).fetchone())


def put(db: sqlite3.Connection, values: dict) -> None:
    names = audit.COLUMNS
    db.execute(
        f"INSERT INTO audit ({', '.join(names)}) VALUES ({', '.join('?' * len(names))})", [values[n] for n in names]
    )


def forged(seq: int, prev_hash: str) -> dict:
    """A prediction row that a careful forger chains correctly after ``prev_hash``."""
    values = {**audit._entries([prediction(99, actor="intrus")], "prediction")[0], "at": audit.now_iso(), "seq": seq}
    return {**values, "prev_hash": prev_hash, "row_hash": audit.row_hash(prev_hash, values)}


def set_column(column: str, value) -> Callable[[sqlite3.Connection], None]:
    return lambda db: db.execute(f"UPDATE audit SET {column} = ? WHERE seq = 5", (value,))


def edit_inputs(db):
    inputs = json.loads(row(db, 5)["inputs"])
    db.execute("UPDATE audit SET inputs = ? WHERE seq = 5", (audit.canonical({**inputs, "temperature": 20.0}),))


def edit_and_rehash(db):
    values = {**row(db, 5), "decision": "Anomalie", "score": 0.1}
    db.execute(
        "UPDATE audit SET decision = ?, score = ?, row_hash = ? WHERE seq = 5",
        ("Anomalie", 0.1, audit.row_hash(values["prev_hash"], values)),
    )


def shift_from(db, first: int) -> None:
    for seq in range(ROWS, first - 1, -1):
        db.execute("UPDATE audit SET seq = seq + 1 WHERE seq = ?", (seq,))


def insert_middle(db):
    shift_from(db, 6)  # make room at 6, as a careful forger would
    put(db, forged(6, row(db, 5)["row_hash"]))


def insert_tail(db):
    put(db, forged(ROWS + 1, row(db, ROWS)["row_hash"]))


def insert_tail_and_head(db):
    values = forged(ROWS + 1, row(db, ROWS)["row_hash"])
    put(db, values)
    db.execute("UPDATE chain_head SET count = ?, head_hash = ?", (ROWS + 1, values["row_hash"]))


def swap_rows(db):
    db.execute("UPDATE audit SET seq = -1 WHERE seq = 4")
    db.execute("UPDATE audit SET seq = 4 WHERE seq = 5")
    db.execute("UPDATE audit SET seq = 5 WHERE seq = -1")


def truncate_and_move_head(db):
    db.execute("DELETE FROM audit WHERE seq > 10")
    db.execute("UPDATE chain_head SET count = 10, head_hash = ?", (row(db, 10)["row_hash"],))


def rewrite_from_row_5(db):
    """An insider edits row 5 and recomputes every later hash and the head: a self-consistent chain."""
    prev = row(db, 4)["row_hash"]
    for seq in range(5, ROWS + 1):
        values = {**row(db, seq), "prev_hash": prev}
        if seq == 5:
            values["decision"] = "Anomalie"
        prev = audit.row_hash(prev, values)
        db.execute(
            "UPDATE audit SET decision = ?, prev_hash = ?, row_hash = ? WHERE seq = ?",
            (values["decision"], values["prev_hash"], prev, seq),
        )
    db.execute("UPDATE chain_head SET head_hash = ?", (prev,))


def empty_and_reset_head(db):
    db.execute("DELETE FROM audit")
    db.execute("UPDATE chain_head SET count = 0, head_hash = ?", (audit.GENESIS,))


# id, damage, verify with the head anchored elsewhere (--ancre), row the report must name (None: the anchor), detected
AUDIT_CASES = [
    *[
        (f"edit_{column}", set_column(column, value), False, 5, True)
        for column, value in [
            ("kind", "feedback"),
            ("at", "2020-01-01T00:00:00.000+00:00"),
            ("actor", "quelqu-un"),
            ("request_id", "req-autre"),
            ("source", "stream"),
            ("equipment_id", "pompe-02"),
            ("score", 0.01),
            ("decision", "Anomalie"),
            ("model_version", "1.1.0"),
            ("app_version", "9.9.9"),
            ("client", "10.0.0.1"),
            ("details", '{"note":"ajout"}'),
            ("prev_hash", "f" * 64),
            ("row_hash", "f" * 64),
        ]
    ],
    ("edit_one_sensor_value", edit_inputs, False, 5, True),
    ("edit_and_recompute_own_hash", edit_and_rehash, False, 6, True),
    ("insert_middle_chained", insert_middle, False, 7, True),
    ("insert_with_a_gap", lambda db: put(db, forged(40, row(db, ROWS)["row_hash"])), False, 40, True),
    ("append_tail_without_head", insert_tail, False, ROWS + 1, True),
    ("delete_first", lambda db: db.execute("DELETE FROM audit WHERE seq = 1"), False, 2, True),
    ("delete_middle", lambda db: db.execute("DELETE FROM audit WHERE seq = 6"), False, 7, True),
    ("delete_last", lambda db: db.execute("DELETE FROM audit WHERE seq = ?", (ROWS,)), False, ROWS, True),
    (
        "delete_tail_of_two",
        lambda db: db.execute("DELETE FROM audit WHERE seq > ?", (ROWS - 2,)),
        False,
        ROWS - 1,
        True,
    ),
    ("delete_all_rows", lambda db: db.execute("DELETE FROM audit"), False, 1, True),
    ("reorder_two_rows", swap_rows, False, 4, True),
    ("head_count_edited", lambda db: db.execute("UPDATE chain_head SET count = count - 1"), False, ROWS, True),
    ("head_hash_edited", lambda db: db.execute("UPDATE chain_head SET head_hash = ?", ("a" * 64,)), False, ROWS, True),
    ("truncate_and_move_head", truncate_and_move_head, True, None, True),
    ("rewrite_from_row_5_and_head", rewrite_from_row_5, True, None, True),
    ("empty_and_reset_head", empty_and_reset_head, True, None, True),
    # The limit: a forger who can write the file appends rows as the service does. Only reading them finds them.
    ("append_tail_with_head_LIMIT", insert_tail_and_head, True, None, False),
]


def audit_verify(db: Path, anchor: str | None = None) -> subprocess.CompletedProcess:
    """What ``make audit-verify`` runs (``$(PY) -m stage4_prod.audit verify``, the trail from STATE_DB)."""
    command = [sys.executable, "-m", "stage4_prod.audit", "verify", *(["--ancre", anchor] if anchor else [])]
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT), "STATE_DB": str(db)}
    return subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)


def test_make_audit_verify_runs_the_command_these_tests_run():
    recipe = re.search(r"^audit-verify:.*\n\t(.*)$", (ROOT / "Makefile").read_text(), re.MULTILINE).group(1)
    assert recipe.strip() == "$(PY) -m stage4_prod.audit verify"


@pytest.mark.parametrize(
    ("damage", "anchored", "first_bad", "detected"), [c[1:] for c in AUDIT_CASES], ids=[c[0] for c in AUDIT_CASES]
)
def test_audit_tampering_is_reported_by_make_audit_verify(tmp_path, damage, anchored, first_bad, detected):
    db = tmp_path / "stage4.sqlite"
    build_trail(db)
    intact = audit_verify(db)
    assert intact.returncode == 0 and f"Journal d'audit intègre : {ROWS} ligne(s)" in intact.stdout
    anchor = re.search(r"Empreinte de tête .*: ([0-9a-f]{64})", intact.stdout).group(1)
    conn = sqlite3.connect(db, isolation_level=None)
    conn.row_factory = sqlite3.Row
    damage(conn)
    conn.close()
    checked = audit_verify(db, anchor if anchored else None)
    if not detected:
        assert checked.returncode == 0, checked.stderr  # the documented limit (docs/annexes/fiabilite.md)
        return
    assert checked.returncode == 1, checked.stdout
    report = checked.stderr
    assert report.startswith("Journal d'audit ALTÉRÉ") and "Traceback" not in report
    if first_bad is None:
        assert "l'empreinte d'ancrage" in report and "n'apparaît pas dans la chaîne" in report
    else:
        assert f"première ligne en cause : n° {first_bad}." in report
        assert f"ligne n° {first_bad}" in report or f"après la ligne n° {first_bad - 1}" in report


# ---- the model registry ---------------------------------------------------------------------------


def flip_bytes(folder: Path) -> None:
    data = bytearray((folder / "model.joblib").read_bytes())
    data[len(data) // 2] ^= 0xFF
    (folder / "model.joblib").write_bytes(bytes(data))


def truncate(folder: Path) -> None:
    data = (folder / "model.joblib").read_bytes()
    (folder / "model.joblib").write_bytes(data[: len(data) // 2])


def edit_metadata(**changes) -> Callable[[Path], None]:
    def damage(folder: Path) -> None:
        meta = json.loads((folder / "metadata.json").read_text())
        for name, change in changes.items():
            meta[name] = change(meta[name]) if callable(change) else change
        (folder / "metadata.json").write_text(json.dumps(meta))

    return damage


def copy_from_other(*names: str) -> Callable[[Path], None]:
    def damage(folder: Path) -> None:
        for name in names:
            shutil.copy(folder.parent / "1.0.0" / name, folder / name)

    return damage


def shifted_reference(reference: dict) -> dict:
    inputs = {name: [q + 1.0 for q in qs] for name, qs in reference["inputs"].items()}
    return {**reference, "inputs": inputs}


# id, damage done to version 1.1.0's folder, what the French refusal says
MODEL_CASES = [
    ("artifact_bytes_changed", flip_bytes, "empreinte sha256"),
    ("artifact_truncated", truncate, "empreinte sha256"),
    ("artifact_emptied", lambda f: (f / "model.joblib").write_bytes(b""), "empreinte sha256"),
    ("artifact_deleted", lambda f: (f / "model.joblib").unlink(), "absent"),
    ("artifact_of_another_version", copy_from_other("model.joblib"), "empreinte sha256"),
    ("metadata_sha256_edited", edit_metadata(sha256="0" * 64), "empreinte sha256"),
    ("metadata_threshold_edited", edit_metadata(threshold=lambda t: t * 2), "threshold"),
    ("metadata_features_edited", edit_metadata(features=lambda f: f[:-1]), "features"),
    ("metadata_reference_edited", edit_metadata(reference=shifted_reference), "reference"),
    ("metadata_version_edited", edit_metadata(version="1.0.0"), "se déclare version 1.0.0"),
    (
        "whole_version_of_another_copied_in",
        copy_from_other("model.joblib", "metadata.json"),
        "se déclare version 1.0.0",
    ),
    ("metadata_not_json", lambda f: (f / "metadata.json").write_text("{ pas du json"), "illisibles"),
    ("metadata_deleted", lambda f: (f / "metadata.json").unlink(), "introuvable"),
]


@pytest.mark.parametrize(("damage", "reason"), [c[1:] for c in MODEL_CASES], ids=[c[0] for c in MODEL_CASES])
def test_a_damaged_version_is_refused_by_the_registry(registry, damage, reason):
    load("1.1.0", registry)  # intact, it loads
    damage(registry / "1.1.0")
    with pytest.raises(RegistryError, match=re.escape(reason)) as refused:
        load("1.1.0", registry)
    assert "1.1.0" in str(refused.value)
    assert load("1.0.0", registry).version == "1.0.0"  # the other version is untouched


def assert_serves(client, headers, version: str, times: int = 5) -> None:
    for _ in range(times):
        answer = client.post("/predict", json=EXAMPLE_READING, headers=headers)
        assert answer.status_code == 200 and answer.json()["model_version"] == version, answer.text


@pytest.mark.parametrize(("damage", "reason"), [c[1:] for c in MODEL_CASES], ids=[c[0] for c in MODEL_CASES])
def test_stage4_refuses_to_deploy_a_damaged_version_and_keeps_serving(
    stage4_keys, stage4_env, registry, damage, reason
):
    db = Path(stage4_env["STATE_DB"])
    headers = {role: {auth.HEADER: stage4_keys[role]} for role in ("admin", "operator")}
    damage(registry / "1.1.0")
    with TestClient(app) as client:
        assert_serves(client, headers["operator"], "1.0.0", times=1)
        refused = client.post("/admin/models/1.1.0/deploy", headers=headers["admin"])
        assert refused.status_code == (404 if reason == "introuvable" else 422), refused.text
        assert refused.json()["detail"].startswith("déploiement de 1.1.0 refusé") and reason in refused.json()["detail"]
        assert_serves(client, headers["operator"], "1.0.0")
    assert deployment.current(db).version == "1.0.0"
    assert [r["details"]["version"] for r in audit.query(db, kind="deploy_refused")] == ["1.1.0"]
    assert audit.verify(db).ok


def test_the_served_version_damaged_on_disk_keeps_serving_from_memory_and_a_restart_refuses_it(
    stage4_env, stage4_keys, registry, tmp_path
):
    """Two live workers: damage 1.0.0 while it is served; then deploy and roll back; then restart."""
    db = Path(stage4_env["STATE_DB"])
    keys = {role: {auth.HEADER: stage4_keys[role]} for role in ("admin", "operator")}
    with (
        LiveServer("stage4_prod", stage4_env, tmp_path / "server.log", workers=2) as server,
        httpx.Client(base_url=server.url, timeout=30) as http,
    ):
        assert_serves(http, keys["operator"], "1.0.0", times=10)
        flip_bytes(registry / "1.0.0")
        assert_serves(http, keys["operator"], "1.0.0", times=20)  # both workers: the model in memory
        assert http.get("/health").json()["model_version"] == "1.0.0"
        assert http.post("/admin/models/1.1.0/deploy", headers=keys["admin"]).status_code == 200
        assert http.post("/admin/rollback", headers=keys["admin"]).status_code == 200
        # Back to 1.0.0: every worker still holds the copy it checked when it loaded it, and serves it.
        time.sleep(10 * float(stage4_env["MODEL_CHECK_INTERVAL_S"]))  # every worker has read the pointer
        assert_serves(http, keys["operator"], "1.0.0", times=20)
        assert server.process.poll() is None
    assert "Traceback" not in server.log()
    # A restart must load 1.0.0 from disk again: refused, the service stays up and says why (503, French).
    with TestClient(app) as client:  # the same settings: stage4_keys set them in this process
        health = client.get("/health")
        assert health.status_code == 503 and "empreinte sha256" in health.json()["detail"]
        refused = client.post("/predict", json=EXAMPLE_READING, headers=keys["operator"])
        assert refused.status_code == 503 and refused.json()["detail"].startswith("aucun modèle chargé")
        assert client.get("/version").status_code == 200
        # The way out: roll forward to a sound version, which the admin can still do.
        deployed = client.post("/admin/models/1.1.0/deploy", headers=keys["admin"])
        assert deployed.status_code == 200, deployed.text
        assert_serves(client, keys["operator"], "1.1.0")
    assert audit.verify(db).ok
