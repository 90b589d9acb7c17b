"""What stage 3 adds around the API of stage 2: the model version on every answer, a health that
checks the inference log, blocking work in the thread pool, and /metrics in Prometheus's format."""

from __future__ import annotations

import inspect

from prometheus_client.parser import text_string_to_metric_families

from common.schema import EXAMPLE_READING
from stage3_preprod import api, batch_api, monitoring
from tests.conftest import TEST_VERSION


def test_endpoints_that_write_or_read_files_are_plain_def():
    for endpoint in (api.health, api.models, batch_api.predict_batch, batch_api.predict_csv, monitoring.metrics):
        assert not inspect.iscoroutinefunction(endpoint)  # file writes and reads: in the thread pool


def test_every_answer_says_the_model_version(client):
    for response in (client.get("/health"), client.post("/predict", json={"pressure": 1}), client.get("/nulle-part")):
        assert response.headers["X-Model-Version"] == TEST_VERSION


def test_health_is_503_in_french_when_the_inference_log_cannot_be_written(api_env, tmp_path, monkeypatch):
    from fastapi.testclient import TestClient

    from stage3_preprod.app import app

    blocked = tmp_path / "fichier"
    blocked.write_text("un fichier, pas un dossier")
    monkeypatch.setenv("LOG_DIR", str(blocked))
    with TestClient(app) as client:
        health = client.get("/health")
        predicted = client.post("/predict", json=EXAMPLE_READING)
    assert health.status_code == 503 and health.json()["detail"].startswith("le service ne peut pas tracer")
    assert predicted.status_code == 503 and predicted.json()["detail"].startswith("journal des inférences indisponible")


def samples(text: str) -> dict[tuple[str, tuple], float]:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def test_metrics_are_prometheus_text_with_requests_latency_predictions_and_anomalies(client):
    before = samples(client.get("/metrics").text)
    client.post("/predict", json=EXAMPLE_READING)
    client.post("/predict", json={**EXAMPLE_READING, "pressure": 500})
    distress = {**EXAMPLE_READING, "accelerometer1_rms": 0.27, "volume_flow_rate_rms": 10.0, "pressure": 1.1}
    assert client.post("/predict", json={**distress, "temperature": 120.0}).json()["decision"] == "Anomalie"
    client.post("/predict/batch", json=[EXAMPLE_READING, EXAMPLE_READING])
    response = client.get("/metrics")
    assert response.headers["content-type"].startswith("text/plain; version=")
    after = samples(response.text)

    def grew(name: str, **labels: str) -> float:
        key = (name, tuple(sorted(labels.items())))
        return after.get(key, 0.0) - before.get(key, 0.0)

    assert grew("pompe_requests_total", route="POST /predict", status="200") == 2
    assert grew("pompe_requests_total", route="POST /predict", status="422") == 1
    assert grew("pompe_request_duration_seconds_count", route="POST /predict") == 3
    assert grew("pompe_request_duration_seconds_bucket", route="POST /predict", le="+Inf") == 3
    assert grew("pompe_predictions_total", model_version=TEST_VERSION) == 4
    assert grew("pompe_anomalies_total", model_version=TEST_VERSION) == 1
