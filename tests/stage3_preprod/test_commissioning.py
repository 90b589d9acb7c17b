"""Stage 3 serves a commissioned equipment's version by MODEL_VERSION, with no code of its own for it."""

from __future__ import annotations

import shutil

from fastapi.testclient import TestClient

from common.baseline import COMMISSIONING_READINGS, commission_version
from common.data import write_csv
from common.registry import load
from common.schema import SENSOR_NAMES
from common.simulator import simulate
from stage3_preprod.app import app

VERSION = "1.0.0-p101"


def test_a_commissioned_version_is_served_with_its_own_threshold(api_env, models_dir, tmp_path, monkeypatch):
    root = tmp_path / "models"
    shutil.copytree(models_dir / "1.0.0", root / "1.0.0")
    pump = simulate("normal", seed=80, hours=12, equipment_id="P-101")
    pump[["volume_flow_rate_rms", "current"]] *= 2.0  # another pump, at another operating point
    pump[["accelerometer1_rms", "accelerometer2_rms"]] *= 3.0
    write_csv(pump.iloc[:COMMISSIONING_READINGS], tmp_path / "premieres_lectures.csv")
    commission_version("1.0.0", VERSION, "P-101", tmp_path / "premieres_lectures.csv", path=root)
    commissioned, general = load(VERSION, root).model, load("1.0.0", root).model
    reading = {name: float(pump[name].iloc[600]) for name in SENSOR_NAMES}
    assert general.score_reading(reading) > general.threshold_  # unseen operating point: an alarm without it

    monkeypatch.setenv("MODELS_DIR", str(root))
    monkeypatch.setenv("MODEL_VERSION", VERSION)
    with TestClient(app) as client:
        body = client.post("/predict", json={**reading, "equipment_id": "P-101"}).json()
        assert body["model_version"] == VERSION
        assert body["threshold"] == commissioned.threshold_ != general.threshold_
        assert body["score"] == commissioned.score_reading(reading)
        assert body["decision"] == "Normal"
        listed = client.get("/models").json()
        assert listed["served"] == VERSION and [m["version"] for m in listed["models"]] == [VERSION, "1.0.0"]
    monkeypatch.delenv("MODEL_VERSION")
    with TestClient(app) as client:  # without MODEL_VERSION, the general model (1.0.0-p101 sorts before 1.0.0)
        assert client.get("/health").json()["model_version"] == "1.0.0"
