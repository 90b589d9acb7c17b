"""GET /monitoring: drift raised by a recalibrated sensor and not by normal days, feedback per version, retrain."""

from __future__ import annotations

import shutil

import pytest
from fastapi.testclient import TestClient

from common.model import AnomalyModel
from common.registry import list_versions, save
from common.schema import EQUIPMENT_ID, SENSOR_NAMES, TIMESTAMP
from common.simulator import simulate
from stage4_prod import auth, deployment, drift, retrain
from stage4_prod.app import app


def as_json(frame) -> list[dict]:
    return [
        {**{n: r[n] for n in SENSOR_NAMES}, EQUIPMENT_ID: r[EQUIPMENT_ID], TIMESTAMP: r[TIMESTAMP].isoformat()}
        for r in frame.to_dict("records")
    ]


@pytest.fixture
def day_client(state_db, keys, monkeypatch):
    """The API with a batch as large as the drift window (a day of readings), to fill it in one request."""
    monkeypatch.setenv("MAX_BATCH_ROWS", str(drift.WINDOW))
    with TestClient(app) as client:
        yield client


def send(client, keys, frame) -> dict:
    response = client.post("/predict/batch", json=as_json(frame), headers={auth.HEADER: keys["operator"]})
    assert response.status_code == 200, response.text
    return response.json()


def monitoring(client, keys) -> dict:
    response = client.get("/monitoring", headers={auth.HEADER: keys["reader"]})
    assert response.status_code == 200
    return response.json()


@pytest.mark.slow
def test_a_recalibrated_sensor_raises_the_alert_through_the_api(day_client, keys, capsys):
    sensor, window = drift.drift_windows(n_series=1, seed=0)[0]
    send(day_client, keys, window)
    report = monitoring(day_client, keys)
    assert report["drift"]["status"] == drift.ALERT and report["drift"]["sensors"][sensor]["status"] == drift.ALERT
    assert report["drift"]["sensors"][sensor]["ks"] is not None and report["model_version"] == "1.0.0"
    assert f"dérive détectée : {sensor} passe de ok à alerte" in capsys.readouterr().out


@pytest.mark.slow
def test_normal_days_raise_no_drift_alert(day_client, keys, capsys):
    for seed in (40, 41, 42):
        frame = simulate("normal", seed=seed, hours=drift.WINDOW / 60, equipment_id=f"pompe-{seed}")
        send(day_client, keys, frame)
        report = monitoring(day_client, keys)
        assert report["drift"]["readings_in_window"] == drift.WINDOW
        assert report["drift"]["status"] != drift.ALERT, report["drift"]
    assert "passe de ok à alerte" not in capsys.readouterr().out


def test_monitoring_shows_service_figures_and_feedback_per_version(client, keys):
    faulty = simulate("cavitation", seed=5, hours=6)
    scored = send(client, keys, faulty.iloc[-300:])
    alarms = [r for r in scored["results"] if r["decision"] == "Anomalie"]
    assert alarms, "the cavitation window raises alarms"
    normal = send(client, keys, simulate("normal", seed=6, hours=2, equipment_id="pompe-06"))
    technician = {auth.HEADER: keys["operator"]}
    confirmed = client.post(
        "/feedback", json={"verdict": "confirmed", "request_id": scored["request_id"]}, headers=technician
    )
    assert confirmed.status_code == 200 and confirmed.json()["alarms"] == len(alarms)
    nothing = client.post(
        "/feedback", json={"verdict": "rejected", "request_id": normal["request_id"]}, headers=technician
    )
    # The seeds fix it: two hours of normal readings raise a few false alarms, all rejected here.
    assert normal["anomalies"] > 0
    assert nothing.status_code == 200 and nothing.json()["alarms"] == normal["anomalies"]
    missed = client.post(
        "/feedback",
        json={"verdict": "missed", "equipment_id": "pompe-06", "fault_at": "2999-01-01T00:00:00Z"},
        headers=technician,
    )
    assert missed.status_code == 200
    unknown = client.post("/feedback", json={"verdict": "confirmed", "request_id": "inconnue"}, headers=technician)
    assert unknown.status_code == 404 and "aucune prédiction" in unknown.json()["detail"]
    report = monitoring(client, keys)
    stats = report["feedback"]["1.0.0"]
    assert stats["confirmed"] == len(alarms) and stats["missed"] == 1
    assert stats["rejected"] == normal["anomalies"] and stats["alarms"] == len(alarms) + normal["anomalies"]
    assert stats["confirmed_share"] == pytest.approx(len(alarms) / stats["alarms"])
    service = report["service"]
    assert service["requests"]["by_route"]["POST /predict/batch"]["200"] == 2
    assert service["latency_ms"]["p95"] is not None and report["deployment"]["version"] == "1.0.0"


def test_retrain_builds_a_candidate_from_normal_audited_readings_and_never_deploys(
    client, keys, state_db, models_dir, tmp_path
):
    registry = tmp_path / "registry"
    shutil.copytree(models_dir / "1.0.0", registry / "1.0.0")
    for seed in (50, 51, 52):
        send(client, keys, simulate("normal", seed=seed, hours=16, equipment_id=f"pompe-{seed}"))
    served, text = retrain.retrain("1.1.0", state_db, models_dir=registry)
    assert served == "1.0.0" and list_versions(registry) == ["1.0.0", "1.1.0"]
    assert "1.0.0 (servie)" in text and "1.1.0 (candidate)" in text and "toutes pannes" in text
    assert deployment.current(state_db).version == "1.0.0"  # promotion is a person's decision
    with pytest.raises(retrain.DataError, match="mesures normales seulement"):
        retrain.retrain("1.2.0", state_db, rows=100, models_dir=registry)


def test_after_a_deploy_answers_and_drift_follow_the_new_version(
    state_db, keys, models_dir, training_frame, tmp_path, monkeypatch
):
    registry = tmp_path / "registry"
    shutil.copytree(models_dir / "1.0.0", registry / "1.0.0")
    save(AnomalyModel(random_state=1).fit(training_frame), "1.1.0", training_frame, path=registry)
    monkeypatch.setenv("MODELS_DIR", str(registry))
    monkeypatch.setenv("MODEL_VERSION", "1.0.0")
    operator = {auth.HEADER: keys["operator"]}
    with TestClient(app) as client:
        reading = as_json(simulate("normal", seed=9, hours=2).iloc[:1])[0]
        assert client.post("/predict", json=reading, headers=operator).json()["model_version"] == "1.0.0"
        deployed = client.post("/admin/models/1.1.0/deploy", headers={auth.HEADER: keys["admin"]})
        assert deployed.status_code == 200 and deployed.json()["previous_version"] == "1.0.0"
        answer = client.post("/predict", json=reading, headers=operator)
        assert answer.json()["model_version"] == answer.headers["x-model-version"] == "1.1.0"
        assert app.state.drift.model_version == "1.1.0"
        assert monitoring(client, keys)["drift"]["model_version"] == "1.1.0"
        again = client.post("/admin/models/1.1.0/deploy", headers={auth.HEADER: keys["admin"]})
        assert again.status_code == 409 and "déjà servie" in again.json()["detail"]
