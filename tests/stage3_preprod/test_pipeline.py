"""Stage 3's new API: batches, CSV upload, the stream, models and metrics; and the promise that stream = batch."""

from __future__ import annotations

import io
import json

import numpy as np
import pandas as pd
import pytest
from fastapi.testclient import TestClient

from common.data import write_csv
from common.schema import EQUIPMENT_ID, EXAMPLE_READING, SENSOR_NAMES, TIMESTAMP
from common.simulator import simulate
from stage3_preprod import batch
from stage3_preprod.app import app
from stage3_preprod.inference_log import read_logs
from tests.conftest import TEST_VERSION


def messages(frame: pd.DataFrame) -> list[dict]:
    return [
        {**{n: r[n] for n in SENSOR_NAMES}, EQUIPMENT_ID: r[EQUIPMENT_ID], TIMESTAMP: r[TIMESTAMP].isoformat()}
        for r in frame.to_dict("records")
    ]


def test_stream_and_batch_give_identical_scores(client, tmp_path):
    frame = simulate("bearing_wear", seed=8, hours=3, equipment_id="pompe-08")
    path = tmp_path / "pompe-08.csv"
    write_csv(frame, path, with_equipment=True)
    batch.run(path, tmp_path / "out", chunk_rows=50)
    batch_scores = pd.read_csv(tmp_path / "out" / "pompe-08_scores.csv", sep=";")["score"].to_numpy()
    with client.websocket_connect("/stream") as ws:
        stream_scores = []
        for message in messages(frame):
            ws.send_text(json.dumps(message))
            stream_scores.append(ws.receive_json()["score"])
    np.testing.assert_array_equal(np.array(stream_scores), batch_scores)
    assert (batch_scores > client.get("/models").json()["models"][0]["threshold"]).any()


def test_a_bad_stream_message_gets_a_french_error_and_the_connection_stays_open(client):
    good = {**EXAMPLE_READING, EQUIPMENT_ID: "pompe-x", TIMESTAMP: "2026-01-05T10:00:00"}
    with client.websocket_connect("/stream") as ws:
        ws.send_text(json.dumps(good))
        assert ws.receive_json()["model_version"] == TEST_VERSION
        for bad, words in (
            ("pas du json", "JSON mal formé"),
            (json.dumps({**good, TIMESTAMP: "2026-01-05T10:00:01", "pressure": 150}), "Pression (pressure)"),
            (json.dumps({**good, "pression": 1}), "champ inconnu"),
            (json.dumps({**good, TIMESTAMP: "2026-01-05T09:00:00"}), "ordre chronologique"),
            (json.dumps({**good, EQUIPMENT_ID: "x" * 20_000}), "trop volumineux"),
        ):
            ws.send_text(bad)
            answer = ws.receive_json()
            assert "score" not in answer and answer["request_id"]
            assert words in answer["detail"] + " ".join(e["message"] for e in answer["errors"]), answer
        ws.send_text(json.dumps({**good, TIMESTAMP: "2026-01-05T10:00:02"}))
        assert ws.receive_json()["decision"] in ("Normal", "Anomalie")
    assert client.get("/metrics/json").json()["requests"]["by_route"]["WS /stream"] == {"200": 2, "422": 5}


def test_batch_answers_per_row_with_partial_success(client):
    readings = [EXAMPLE_READING, {**EXAMPLE_READING, "pressure": 150}, "texte", {**EXAMPLE_READING, "current": "1.2"}]
    response = client.post("/predict/batch", json=readings)
    assert response.status_code == 200
    body = response.json()
    assert (body["received"], body["scored"], body["rejected"]) == (4, 1, 3)
    results = body["results"]
    assert results[0]["decision"] == "Normal" and "errors" not in results[0]
    assert results[1]["errors"][0]["field"] == "pressure" and "hors de la plage" in results[1]["errors"][0]["message"]
    assert "un objet JSON est attendu" in results[2]["errors"][0]["message"]
    assert "n'est pas un nombre" in results[3]["errors"][0]["message"]
    assert body["model_version"] == TEST_VERSION == response.headers["X-Model-Version"]


def test_batch_judges_each_reading_as_predict_does(client, log_dir):
    """Plain readings take a vectorised path, the others the pydantic model: the answers must not tell them apart."""
    readings = [
        EXAMPLE_READING,
        {**EXAMPLE_READING, EQUIPMENT_ID: "p-1", TIMESTAMP: "2026-01-05T10:00:00"},
        {**EXAMPLE_READING, EQUIPMENT_ID: "p-1", TIMESTAMP: "2026-01-05T10:00:01+00:00"},  # accepted by the model
        {**EXAMPLE_READING, EQUIPMENT_ID: "p-1", TIMESTAMP: "2026-02-30T10:00:00"},
        {**EXAMPLE_READING, "voltage": 10**400},
        {**EXAMPLE_READING, "voltage": True, "pression": 1},
        {**EXAMPLE_READING, EQUIPMENT_ID: "x" * 65},
        {**EXAMPLE_READING, "current": None},
        [EXAMPLE_READING],
    ]
    body = client.post("/predict/batch", json=readings).json()
    assert [r["index"] for r in body["results"]] == list(range(len(readings)))
    assert (body["received"], body["scored"], body["rejected"]) == (9, 3, 6)
    for reading, result in zip(readings, body["results"], strict=True):
        single = client.post("/predict", json=reading)
        if "errors" in result:
            assert single.status_code == 422 and result["errors"] == single.json()["errors"], reading
        else:
            assert single.status_code == 200 and result["equipment_id"] == single.json()["equipment_id"]
    logs = read_logs(log_dir)
    assert (logs["source"] == "api_batch").sum() == 3
    assert logs.loc[logs["source"] == "api_batch", "score"].tolist() == [r["score"] for r in body["results"][:3]]


def test_a_batch_body_that_is_not_a_json_list_is_refused_in_french(client):
    for body, words in ((b"", "corps de requête manquant"), (b"[1,", "JSON mal formé"), (b'{"a": 1}', "liste JSON")):
        response = client.post("/predict/batch", content=body, headers={"Content-Type": "application/json"})
        assert response.status_code == 422 and words in response.json()["errors"][0]["message"], response.text
    documented = client.get("/openapi.json").json()["paths"]["/predict/batch"]["post"]["requestBody"]
    assert documented["required"] and documented["content"]["application/json"]["schema"]["type"] == "array"


def test_batch_over_the_row_limit_is_refused_with_413(client, monkeypatch):
    monkeypatch.setenv("MAX_BATCH_ROWS", "5")
    with TestClient(app) as small:
        response = small.post("/predict/batch", json=[EXAMPLE_READING] * 6)
        assert response.status_code == 413 and "6 mesures reçues, 5 au plus" in response.json()["detail"]
        assert small.post("/predict/batch", json=[EXAMPLE_READING] * 5).status_code == 200
    assert client.post("/predict/batch", json={"a": 1}).status_code == 422


def test_csv_upload_scores_good_rows_and_lists_rejects(client):
    frame = simulate("normal", seed=9, hours=2)
    write_csv(frame, buffer := io.StringIO())
    lines = buffer.getvalue().split("\r\n")
    lines[3] = lines[3].replace(lines[3].split(";")[3], "abc", 1)
    response = client.post("/predict/csv", files={"fichier": ("m.csv", "\r\n".join(lines).encode(), "text/csv")})
    assert response.status_code == 200
    body = response.json()
    assert body["scored"] == 119 and body["rejected"] == 1
    assert body["rejects"][0]["line"] == 4 and "n'est pas un nombre" in body["rejects"][0]["reason"]
    assert body["results"][0]["line"] == 2 and body["results"][2]["line"] == 5
    refused = client.post("/predict/csv", files={"fichier": ("v.csv", b"", "text/csv")})
    assert refused.status_code == 422 and "fichier vide" in refused.json()["detail"]


def test_every_prediction_is_logged_with_its_source_and_model_version(client, log_dir):
    rid = {"X-Request-ID": "audit-42"}
    client.post("/predict", json=EXAMPLE_READING, headers=rid)
    client.post("/predict/batch", json=[EXAMPLE_READING] * 3)
    with client.websocket_connect("/stream") as ws:
        ws.send_text(json.dumps(EXAMPLE_READING))
        ws.receive_json()
    logs = read_logs(log_dir)
    assert logs["source"].value_counts().to_dict() == {"api_batch": 3, "api": 1, "stream": 1}
    assert set(logs["model_version"]) == {TEST_VERSION}
    assert logs.loc[logs["source"] == "api", "request_id"].item() == "audit-42"
    assert logs["pressure"].iloc[0] == EXAMPLE_READING["pressure"] and logs["latency_ms"].ge(0).all()


def test_models_lists_the_registry_and_the_served_version(client):
    body = client.get("/models").json()
    assert body["served"] == TEST_VERSION
    (model,) = body["models"]
    assert model["served"] and model["version"] == TEST_VERSION and len(model["sha256"]) == 12


def test_metrics_count_requests_errors_latency_and_predictions(client):
    client.post("/predict", json=EXAMPLE_READING)
    client.post("/predict", json={**EXAMPLE_READING, "pressure": 500})
    client.get("/nulle-part")
    body = client.get("/metrics/json").json()
    routes = body["requests"]["by_route"]
    assert routes["POST /predict"] == {"200": 1, "422": 1} and routes["GET (autre)"] == {"404": 1}
    assert body["requests"]["error_rate"] == pytest.approx(2 / 3)
    assert body["latency_ms"]["p50"] > 0 and body["latency_ms"]["sample_size"] == 3
    assert body["models"][TEST_VERSION]["predictions"] == 1
