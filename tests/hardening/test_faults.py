"""Faults: a read-only or full log folder (stages 3 and 4), a read-only or full state folder (stage 4),
the model folder missing at start or removed while serving.

What a user relies on: no prediction is answered without its trace (stage 3: its line in
the inference log, the only trace it keeps; stage 4: its audit row, and its log line);
the refusal is a 503 with a French message and the request id, never a traceback; the
service stays up (a stream connection stays open), ``/health`` says what is wrong, and
everything works again once the fault is lifted, with no row written before it lost
and the audit chain intact. The faults are real: a small tmpfs remounted read-only, or
filled up (mounts need root; the tests are skipped with the reason otherwise).
"""

from __future__ import annotations

import importlib
import json
import os
import shutil
import time
from collections import Counter

import httpx
import pandas as pd
import pytest
from websockets.sync.client import connect

from tests.hardening.crash_support import (
    STAGE3,
    STAGE4,
    TIMEOUT,
    Server,
    audit_rows,
    fill,
    log_rows,
    new_request_id,
    operator_key,
    reading,
    stage_env,
    tmpfs,
    verify_chain,
)

LOG_REFUSED = "journal des inférences indisponible"
AUDIT_REFUSED = "journal d'audit indisponible"
FILL_ATTEMPTS = 400  # batches sent into a full disk before giving up on seeing it fail
BATCH = 20


class Session:
    """An HTTP client that remembers what was answered (200) and what was refused, by request id."""

    def __init__(self, server: Server, headers: dict[str, str] | None = None):
        self.http = httpx.Client(base_url=server.url, timeout=TIMEOUT, headers=headers or {})
        self.ws_url = server.url.replace("http://", "ws://") + "/stream"
        self.headers = headers or {}
        self.answered: Counter = Counter()  # request id -> readings scored
        self.refused: list[str] = []
        self.n = 0

    def predict(self, rows: int = 1) -> httpx.Response:
        self.n += 1
        request_id = new_request_id()
        if rows == 1:
            response = self.http.post("/predict", json=reading(self.n, "panne"), headers={"X-Request-ID": request_id})
        else:
            batch = [reading(self.n + i, "panne") for i in range(rows)]
            response = self.http.post("/predict/batch", json=batch, headers={"X-Request-ID": request_id})
        assert response.status_code in (200, 503), response.text
        if response.status_code == 200:
            self.answered[request_id] += rows
        else:
            assert response.json()["request_id"] == request_id
            self.refused.append(request_id)
        return response

    def refused_with(self, expected: str, rows: int = 1) -> None:
        response = self.predict(rows)
        assert response.status_code == 503, response.text
        assert expected in response.json()["detail"] and "Traceback" not in response.text

    def until_refused(self, expected: str) -> int:
        """Send batches into a full disk until one is refused; return how many were still answered."""
        for attempt in range(FILL_ATTEMPTS):
            response = self.predict(BATCH)
            if response.status_code == 503:
                assert expected in response.json()["detail"], response.text
                return attempt
        pytest.fail(f"{FILL_ATTEMPTS} lots acceptés sur un disque plein")

    def survives_full_disk(self, directory, expected: str) -> None:
        """Fill ``directory``'s disk: refused (503, ``expected``) and /health says so; emptied: served again."""
        filler = fill(directory)
        self.until_refused(expected)
        assert self.health().status_code == 503
        filler.unlink()
        self.recovered()

    def health(self) -> httpx.Response:
        return self.http.get("/health")

    def stream_refused(self, expected: str) -> None:
        """Two messages on one connection: both refused in French, the connection stays open."""
        with connect(self.ws_url, additional_headers=self.headers, open_timeout=30) as ws:
            for minute in range(2):
                ws.send(json.dumps({**reading(minute, "flux"), "timestamp": f"2026-01-05T00:0{minute}:00"}))
                answer = json.loads(ws.recv(timeout=60))
                assert expected in answer["detail"] and "score" not in answer, answer
                self.refused.append(answer["request_id"])

    def recovered(self) -> None:
        assert self.health().status_code == 200, self.health().text
        assert self.predict().status_code == 200
        assert self.predict(3).status_code == 200


def check_log(session: Session, log_dir) -> list[dict]:
    """Every line whole; each answered request has exactly its lines, a refused one none."""
    rows = log_rows(log_dir)
    logged = Counter(r["request_id"] for r in rows)
    for request_id, n in session.answered.items():
        assert logged[request_id] == n, f"requête {request_id} : {logged[request_id]} ligne(s) sur {n}"
    assert not set(session.refused) & set(logged), "une prédiction refusée a une ligne au journal"
    return rows


def test_stage3_log_read_only_then_full(models_dir, tmp_path):
    """Stage 3 keeps no trace but its log: a prediction it cannot log is refused (503), not answered."""
    log_dir = tmp_path / "logs"
    with tmpfs(log_dir, 256) as disk:
        env = stage_env(STAGE3, models_dir, log_dir)
        with Server(STAGE3, env, tmp_path / "server.log") as server:
            s = Session(server)
            s.recovered()
            disk.read_only(True)
            s.refused_with(LOG_REFUSED)
            s.refused_with(LOG_REFUSED, rows=5)
            s.stream_refused(LOG_REFUSED)
            health = s.health()
            assert health.status_code == 503 and "impossible à écrire" in health.json()["detail"], health.text
            disk.read_only(False)
            s.recovered()

            s.survives_full_disk(log_dir, LOG_REFUSED)
            assert server.process.poll() is None
        rows = check_log(s, log_dir)
    assert "Traceback" not in server.log()
    print(f"\nstage 3: {len(rows)} lines kept, {len(s.answered)} requests answered, {len(s.refused)} refused")


def test_stage4_log_and_state_read_only_then_full(models_dir, tmp_path):
    """Stage 4: no prediction answered without its audit row and its log line; the chain survives every fault.

    The state folder is made read-only between two runs: the running service keeps its audit
    database open for writing (group commit), and a file system with files open for writing
    cannot be remounted read-only (EBUSY) — as a volume mounted read-only by mistake would be.
    """
    log_dir, state_dir = tmp_path / "logs", tmp_path / "state"
    sessions = []
    with tmpfs(state_dir, 512) as state_disk, tmpfs(log_dir, 256) as log_disk:
        state_db = state_dir / "stage4.sqlite"
        key = operator_key(state_db)
        env = stage_env(STAGE4, models_dir, log_dir, state_db)
        with Server(STAGE4, env, tmp_path / "server.log") as server:
            s = Session(server, {"X-API-Key": key})
            sessions.append(s)
            s.recovered()

            # (a) log folder read-only: refused; the audit row was committed before the log failed.
            log_disk.read_only(True)
            s.refused_with(LOG_REFUSED)
            s.stream_refused(LOG_REFUSED)
            assert "journal des inférences" in s.health().json()["detail"]
            log_disk.read_only(False)
            s.recovered()

            # (c) disks full, the state one then the log one.
            s.survives_full_disk(state_dir, AUDIT_REFUSED)
            s.survives_full_disk(log_dir, LOG_REFUSED)
            assert server.process.poll() is None

        # (b) state folder read-only at start: the service starts, says why, answers no prediction.
        state_disk.read_only(True)
        try:
            with Server(STAGE4, env, tmp_path / "server-ro.log").unready() as server:
                s = Session(server, {"X-API-Key": key})
                sessions.append(s)
                health = s.health()
                assert health.status_code == 503 and "Traceback" not in health.text, health.text
                for rows in (1, 5):
                    refused = s.predict(rows)
                    assert refused.status_code == 503 and refused.json()["detail"], refused.text
                assert server.process.poll() is None
            assert "Traceback" not in server.log()
        finally:
            state_disk.read_only(False)
        with Server(STAGE4, env, tmp_path / "server-again.log") as server:
            s = Session(server, {"X-API-Key": key})
            sessions.append(s)
            s.recovered()

        verify_chain(state_db)
        audited = Counter(r["request_id"] for r in audit_rows(state_db))
        answered = sum((s.answered for s in sessions), Counter())
        for request_id, n in answered.items():
            assert audited[request_id] == n, f"prédiction rendue sans sa ligne d'audit : {request_id}"
        s.answered, s.refused = answered, [r for s in sessions for r in s.refused]
        rows = check_log(s, log_dir)
        refused_but_audited = [r for r in s.refused if audited[r]]
    assert all("Traceback" not in log.read_text() for log in tmp_path.glob("server*.log"))
    print(
        f"\nstage 4: {sum(audited.values())} audit rows, {len(rows)} log lines, {len(answered)} requests "
        f"answered, {len(s.refused)} refused ({len(refused_but_audited)} of them audited: log write failed)"
    )


@pytest.mark.parametrize("stage", [STAGE3, STAGE4])
def test_a_write_cut_by_a_full_disk_leaves_no_partial_line(stage, tmp_path):
    """The log is appended with one write per request: if the disk fills half-way, the partial lines are
    removed, so that the next append after recovery does not glue itself to a cut line."""
    inference_log = importlib.import_module(f"{stage}.inference_log")
    rows = pd.DataFrame([reading(i, "panne") for i in range(400)]).assign(
        score=0.5, decision="Normal", model_version="1.0.0"
    )
    log_dir = tmp_path / "logs"
    with tmpfs(log_dir, 64):
        inference_log.record(log_dir, "api", "avant", rows.head(3), 1.0)
        filler = log_dir / "remplissage.bin"
        filler.write_bytes(b"\0" * (60 * 1024 - (log_dir / next(iter(os.listdir(log_dir)))).stat().st_size))
        with pytest.raises(inference_log.LogUnavailable, match="impossible à écrire"):
            inference_log.record(log_dir, "api", "coupee", rows, 1.0)  # about 100 KiB: cut by the full disk
        filler.unlink()
        inference_log.record(log_dir, "api", "apres", rows.head(2), 1.0)
        found = Counter(r["request_id"] for r in log_rows(log_dir))
    assert found == {"avant": 3, "apres": 2}


def restore(saved, models_dir) -> None:
    shutil.copytree(saved, models_dir)


def missing_model_refused(s: Session) -> None:
    """No model: /health and predictions answer 503 in French; the process stays up."""
    health = s.health()
    assert health.status_code == 503 and "aucun modèle" in health.json()["detail"], health.text
    refused = s.http.post("/predict", json=reading(0, "panne"))
    assert refused.status_code == 503 and "aucun modèle chargé" in refused.json()["detail"], refused.text


def test_stage3_model_folder_missing_at_start_then_removed_while_serving(models_dir, tmp_path):
    """Stage 3 loads its model once, at start: missing, it refuses (503) until restarted with a registry;
    removed while serving, the model loaded in memory (sha256 checked at load) keeps serving, traced."""
    registry, log_dir = tmp_path / "models", tmp_path / "logs"
    env = stage_env(STAGE3, registry, log_dir)
    with Server(STAGE3, env, tmp_path / "missing.log").unready() as server:
        missing_model_refused(Session(server))
        restore(models_dir, registry)
        missing_model_refused(Session(server))  # as documented: « lancez make model, puis redémarrez ce service »
        assert server.process.poll() is None
    with Server(STAGE3, env, tmp_path / "serving.log") as server:
        s = Session(server)
        s.recovered()
        shutil.rmtree(registry)
        s.recovered()
        assert s.health().json()["model_version"] == "1.0.0"
    check_log(s, log_dir)


def test_stage4_model_folder_removed_while_serving_then_missing_at_restart(models_dir, tmp_path):
    """Stage 4 keeps serving the model in memory when its folder goes; restarted without it, it refuses
    (503) and recovers by itself once the folder is back (it follows its deployment pointer)."""
    registry, state_db, log_dir = tmp_path / "models", tmp_path / "state" / "stage4.sqlite", tmp_path / "logs"
    restore(models_dir, registry)
    state_db.parent.mkdir()
    headers = {"X-API-Key": operator_key(state_db)}
    env = stage_env(STAGE4, registry, log_dir, state_db)
    with Server(STAGE4, env, tmp_path / "serving.log") as server:
        s = Session(server, headers)
        s.recovered()
        shutil.rmtree(registry)
        s.recovered()
        assert s.health().json()["model_version"] == "1.0.0"
    with Server(STAGE4, env, tmp_path / "restart.log").unready() as server:
        missing = Session(server, headers)
        missing_model_refused(missing)
        restore(models_dir, registry)
        for _ in range(600):  # the pointer is read again every MODEL_CHECK_INTERVAL_S
            if missing.health().status_code == 200:
                break
            time.sleep(0.05)
        missing.recovered()
        assert server.process.poll() is None
    verify_chain(state_db)
    audited = Counter(r["request_id"] for r in audit_rows(state_db))
    for request_id, n in (s.answered + missing.answered).items():
        assert audited[request_id] == n, f"prédiction rendue sans sa ligne d'audit : {request_id}"
    check_log(s, log_dir)
    check_log(missing, log_dir)
