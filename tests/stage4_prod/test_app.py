"""Stage 4's API: every prediction audited before it is answered, the stage 3 scores, no key in a log."""

from __future__ import annotations

import inspect
import io
import sqlite3

import pandas as pd
import pytest

from common.data import write_csv
from common.schema import EXAMPLE_READING
from common.shared_sqlite import GroupCommit
from common.simulator import simulate
from stage3_preprod import scoring as stage3_scoring
from stage4_prod import api, audit, auth, batch, batch_api, deployment, deps, monitoring, pages
from stage4_prod.inference_log import read_logs
from stage4_prod.middleware import SECURITY_HEADERS


def op(keys):
    return {auth.HEADER: keys["operator"]}


def csv_upload(frame: pd.DataFrame) -> dict:
    buffer = io.StringIO()
    write_csv(frame, buffer)
    return {"fichier": ("mesures.csv", io.BytesIO(buffer.getvalue().encode()), "text/csv")}


def test_a_prediction_names_its_model_and_request_and_is_audited_before_the_answer(client, keys, state_db):
    response = client.post("/predict", json=EXAMPLE_READING, headers=op(keys))
    body = response.json()
    assert response.status_code == 200 and body["model_version"] == response.headers["x-model-version"] == "1.0.0"
    assert body["request_id"] == response.headers["x-request-id"]
    (row,) = audit.query(state_db, kind="prediction")
    assert (row["actor"], row["request_id"], row["source"], row["model_version"]) == (
        "operator",
        body["request_id"],
        "api",
        "1.0.0",
    )
    assert row["score"] == body["score"] and row["decision"] == body["decision"] and row["client"] == "testclient"
    assert {k: row["inputs"][k] for k in EXAMPLE_READING} == EXAMPLE_READING and row["app_version"] == "4.0.0"


def test_every_source_is_audited_one_row_per_reading_and_the_chain_verifies(client, keys, state_db, tmp_path):
    frame = simulate("cavitation", seed=3, hours=2)
    readings = [
        {**{k: r[k] for k in EXAMPLE_READING}, "timestamp": r["timestamp"].isoformat()}
        for r in frame.to_dict("records")
    ]
    batch = client.post("/predict/batch", json=readings[:50], headers=op(keys)).json()
    upload = client.post("/predict/csv", files=csv_upload(frame.iloc[:40]), headers=op(keys)).json()
    with client.websocket_connect("/stream", headers=op(keys)) as ws:
        for reading in readings[:5]:
            ws.send_json(reading)
            ws.receive_json()
    form = {k: str(v) for k, v in EXAMPLE_READING.items()}
    assert client.post("/", data={**form, "api_key": keys["operator"]}).status_code == 200
    assert (
        client.post("/fichier", files=csv_upload(frame.iloc[:30]), data={"api_key": keys["operator"]}).status_code
        == 200
    )
    rows = audit.query(state_db, kind="prediction", limit=1000)
    sources = pd.Series([r["source"] for r in rows]).value_counts().to_dict()
    assert sources == {"api_batch": 50, "api_csv": 40, "stream": 5, "form": 1, "form_file": 30}
    assert [r["score"] for r in rows if r["request_id"] == batch["request_id"]] == [
        x["score"] for x in batch["results"]
    ]
    assert [r["score"] for r in rows if r["request_id"] == upload["request_id"]] == [
        x["score"] for x in upload["results"]
    ]
    assert audit.verify(state_db).ok
    logged = read_logs(tmp_path / "logs")  # the stage 3 inference log is kept too
    assert len(logged) == len(rows) and set(logged["request_id"]) == {r["request_id"] for r in rows}


def test_stream_readings_carry_the_handshakes_request_id_into_the_audit(client, keys, state_db):
    """Behind the proxy, the handshake's X-Request-ID (nginx's) links each reading to the proxy's log line."""
    with client.websocket_connect("/stream", headers={**op(keys), "X-Request-ID": "nginx-3f2a"}) as ws:
        answers = []
        for _ in range(3):
            ws.send_json(EXAMPLE_READING)
            answers.append(ws.receive_json()["request_id"])
    with client.websocket_connect("/stream", headers={**op(keys), "X-Request-ID": "bad id\nwith newline"}) as ws:
        ws.send_json(EXAMPLE_READING)
        unsafe = ws.receive_json()["request_id"]
    assert answers == ["nginx-3f2a-1", "nginx-3f2a-2", "nginx-3f2a-3"]
    assert unsafe.endswith("-1") and " " not in unsafe and len(unsafe) <= 64  # an unsafe id is replaced
    audited = [r["request_id"] for r in audit.query(state_db, kind="prediction", limit=10) if r["source"] == "stream"]
    assert sorted(audited) == sorted([*answers, unsafe])


def test_scores_are_those_of_stage_3_for_the_same_readings(client, keys, loaded_model):
    one = client.post("/predict", json=EXAMPLE_READING, headers=op(keys)).json()
    assert one["score"] == stage3_scoring.score_reading(loaded_model, EXAMPLE_READING)["score"]
    frame = simulate("bearing_wear", seed=4, hours=3)
    upload = client.post("/predict/csv", files=csv_upload(frame), headers=op(keys)).json()
    expected = stage3_scoring.score_file(loaded_model, csv_upload(frame)["fichier"][1].getvalue())
    assert [r["score"] for r in upload["results"]] == pytest.approx(expected["score"].tolist(), abs=0)


def block_audit_writes(db) -> None:
    """The audit trail refuses any new row, as a full disk or a read-only volume would."""
    conn = sqlite3.connect(db)
    conn.execute("CREATE TRIGGER refuse BEFORE INSERT ON audit BEGIN SELECT RAISE(ABORT, 'disque plein'); END")
    conn.commit()
    conn.close()


def test_no_prediction_is_answered_when_the_audit_trail_cannot_be_written(client, keys, state_db, tmp_path):
    block_audit_writes(state_db)
    for response in (
        client.post("/predict", json=EXAMPLE_READING, headers=op(keys)),
        client.post("/predict/batch", json=[EXAMPLE_READING] * 3, headers=op(keys)),
    ):
        body = response.json()
        assert response.status_code == 503 and "journal d'audit indisponible" in body["detail"]
        assert "score" not in body and "results" not in body and body["request_id"]
    with client.websocket_connect("/stream", headers=op(keys)) as ws:
        ws.send_json(EXAMPLE_READING)
        answer = ws.receive_json()
        assert "score" not in answer and "journal d'audit indisponible" in answer["detail"]
    assert audit.query(state_db, kind="prediction") == [] and audit.verify(state_db).ok
    assert not list((tmp_path / "logs").glob("*.csv"))  # nothing logged as answered either


def test_security_headers_on_every_response(client, keys):
    for response in (
        client.get("/health"),
        client.post("/predict", json=EXAMPLE_READING, headers=op(keys)),
        client.post("/predict", json=EXAMPLE_READING),
        client.get("/"),
    ):
        for name, value in SECURITY_HEADERS.items():
            assert response.headers[name] == value, name


def test_a_response_that_sets_a_security_header_keeps_its_own():
    from starlette.applications import Starlette
    from starlette.responses import PlainTextResponse
    from starlette.routing import Route
    from starlette.testclient import TestClient as StarletteClient

    from stage4_prod.middleware import SecurityHeaders

    async def cached(request):
        return PlainTextResponse("ok", headers={"Cache-Control": "max-age=60"})

    inner = Starlette(routes=[Route("/", cached)])
    response = StarletteClient(SecurityHeaders(inner)).get("/")
    assert response.headers.get_list("cache-control") == ["max-age=60"]
    for name, value in SECURITY_HEADERS.items():
        if name != "Cache-Control":
            assert response.headers[name] == value, name


def test_auditor_filters_and_exports_the_trail(client, keys, state_db):
    client.post("/predict", json=EXAMPLE_READING, headers=op(keys))
    auditor = {auth.HEADER: keys["auditor"]}
    mine = client.get("/audit", params={"user": "operator", "model_version": "1.0.0"}, headers=auditor).json()
    assert mine["count"] == 1 and mine["rows"][0]["kind"] == "prediction"
    assert client.get("/audit", params={"user": "personne"}, headers=auditor).json()["count"] == 0
    later = client.get("/audit", params={"since": "2999-01-01T00:00:00Z"}, headers=auditor).json()
    assert later["count"] == 0
    bad = client.get("/audit", params={"since": "hier"}, headers=auditor)
    assert bad.status_code == 422 and "ISO 8601" in bad.json()["detail"]
    exported = client.get("/audit", params={"format": "csv", "kind": "prediction"}, headers=auditor)
    assert exported.headers["content-type"].startswith("text/csv") and exported.text.startswith("seq;kind;at;actor")
    assert len(exported.text.splitlines()) == 2


def test_a_key_never_appears_in_a_log(client, keys, capsys, caplog):
    secret = {k: v.split(".", 1)[1] for k, v in keys.items()}
    client.post("/predict", json=EXAMPLE_READING, headers=op(keys))
    client.post("/predict", json=EXAMPLE_READING, headers={auth.HEADER: keys["revoked"]})
    client.get("/audit", headers={auth.HEADER: keys["operator"]})
    client.get("/metrics", headers={auth.HEADER: keys["reader"][:-2] + "xx"})  # the right id, a wrong secret
    with client.websocket_connect(f"/stream?api_key={keys['operator']}") as ws:
        ws.send_json(EXAMPLE_READING)
        ws.receive_json()
    form = {k: str(v) for k, v in EXAMPLE_READING.items()}
    client.post("/", data={**form, "api_key": keys["operator"]})
    logged = capsys.readouterr().out + caplog.text
    assert "who=operator:" in logged and "refused API key" in logged
    for value in secret.values():
        assert value not in logged
        assert value[:12] not in logged


def test_the_batch_job_scores_with_the_served_version_and_audits_every_reading(state_db, tmp_path, capsys):
    deployment.initialize(state_db, "1.0.0", by="test")
    folder = tmp_path / "entree"
    folder.mkdir()
    write_csv(simulate("normal", seed=8, hours=2), folder / "pompe.csv")
    (summary,) = batch.run(folder, tmp_path / "sorties", chunk_rows=50)
    rows = audit.query(state_db, kind="prediction", limit=1000)
    assert summary.modele == "1.0.0" and len(rows) == summary.lignes == 120
    assert {r["source"] for r in rows} == {"batch_cli"} and rows[0]["actor"].startswith("cli")
    assert audit.verify(state_db).ok


def test_no_audit_commit_runs_in_the_event_loop_and_one_reading_does_not_hop_to_the_thread_pool():
    # Batches and files: scored and committed in the thread pool.
    for endpoint in (batch_api.predict_batch, batch_api.predict_csv, api.health):
        assert not inspect.iscoroutinefunction(endpoint)
    # One reading: scored in the event loop, its audit commit handed to the recorder's writer thread.
    for endpoint in (api.predict, pages.score_form, monitoring.trace_reading):
        assert inspect.iscoroutinefunction(endpoint)
    # One indexed read on an open connection, a cached model: a thread hop would cost more.
    for dependency in (auth.require("predict"), deps.get_model, deps.get_request_id):
        assert inspect.iscoroutinefunction(dependency)


def test_the_audit_commit_of_one_reading_runs_in_the_recorders_writer_thread(client, keys, monkeypatch):
    import threading

    committed_in = []
    write = GroupCommit._write

    def spy(self, jobs):
        committed_in.append(threading.current_thread().name)
        write(self, jobs)

    monkeypatch.setattr(GroupCommit, "_write", spy)
    assert client.post("/predict", json=EXAMPLE_READING, headers=op(keys)).status_code == 200
    assert len(committed_in) == 1 and committed_in[0].startswith("audit-writer")
