"""Stage 4's batch endpoint: the vectorised path answers, audits and logs as the per-reading model does."""

from __future__ import annotations

from common.schema import EQUIPMENT_ID, EXAMPLE_READING, TIMESTAMP
from stage4_prod import audit, auth
from stage4_prod.inference_log import read_logs


def test_batch_judges_each_reading_as_predict_does_and_audits_each_scored_one(client, keys, state_db, tmp_path):
    operator = {auth.HEADER: keys["operator"]}
    readings = [
        {**EXAMPLE_READING, EQUIPMENT_ID: "p-4", TIMESTAMP: "2026-01-05T10:00:00"},
        {**EXAMPLE_READING, EQUIPMENT_ID: "p-4", TIMESTAMP: "2026-01-05T10:00:01+00:00"},  # accepted by the model
        {**EXAMPLE_READING, "voltage": 10**400},
        {**EXAMPLE_READING, "current": "1.2", "pression": 1},
        "texte",
    ]
    response = client.post("/predict/batch", json=readings, headers=operator)
    body = response.json()
    assert response.status_code == 200 and (body["scored"], body["rejected"]) == (2, 3)
    for reading, result in zip(readings, body["results"], strict=True):
        single = client.post("/predict", json=reading, headers=operator)
        if "errors" in result:
            assert single.status_code == 422 and result["errors"] == single.json()["errors"], reading
        else:
            assert single.status_code == 200 and result["equipment_id"] == single.json()["equipment_id"]
    audited = audit.query(state_db, kind="prediction", limit=audit.MAX_QUERY_ROWS)
    batch_rows = [r for r in audited if r["request_id"] == body["request_id"]]
    assert [r["score"] for r in batch_rows] == [r["score"] for r in body["results"][:2]]
    logs = read_logs(tmp_path / "logs")
    assert (logs["request_id"] == body["request_id"]).sum() == 2
    refused = client.post("/predict/batch", content=b"[1,", headers={**operator, "Content-Type": "application/json"})
    assert refused.status_code == 422 and "JSON mal formé" in refused.json()["errors"][0]["message"]
    assert client.post("/predict/batch", json=readings).status_code == 401
