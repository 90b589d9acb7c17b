"""Model versions: reproducible training, never overwritten, MODEL_VERSION chooses the served one."""

from __future__ import annotations

import numpy as np
from fastapi.testclient import TestClient

from common.model import AnomalyModel
from common.registry import load, read_metadata, save
from common.schema import EXAMPLE_READING
from common.simulator import simulate
from stage3_preprod import train
from stage3_preprod.app import app


def test_retraining_with_the_same_inputs_gives_the_same_scores(tmp_path, monkeypatch):
    monkeypatch.setattr(train, "TRAINING_SEEDS", range(2))
    monkeypatch.setattr(train, "TRAINING_HOURS", 12.0)
    train.train("1.0.0", models_dir=tmp_path)
    train.train("1.0.1", models_dir=tmp_path)
    probe = simulate("cavitation", seed=42, hours=3)
    a, b = load("1.0.0", tmp_path), load("1.0.1", tmp_path)
    np.testing.assert_array_equal(a.model.score(probe), b.model.score(probe))
    meta = read_metadata("1.0.1", tmp_path)
    assert meta["training_data"]["fingerprint"] == read_metadata("1.0.0", tmp_path)["training_data"]["fingerprint"]
    assert meta["git_commit"]
    assert (tmp_path / "1.0.1").stat().st_mode & 0o055 == 0o055  # readable by a container's other user


def test_an_existing_version_is_refused(model_env, capsys):
    assert train.main(["--version", "1.0.0"]) == 2
    assert "existe déjà" in capsys.readouterr().err


def test_model_version_chooses_the_served_version(api_env, models_dir, training_frame, monkeypatch):
    if not (models_dir / "1.1.0").exists():
        save(AnomalyModel(random_state=1).fit(training_frame), "1.1.0", training_frame, path=models_dir)
    monkeypatch.setenv("MODEL_VERSION", "1.0.0")
    with TestClient(app) as client:
        body = client.get("/models").json()
        assert body["served"] == "1.0.0" and [m["served"] for m in body["models"]] == [True, False]
        assert client.post("/predict", json=EXAMPLE_READING).json()["model_version"] == "1.0.0"
    monkeypatch.delenv("MODEL_VERSION")
    with TestClient(app) as client:
        assert client.get("/health").json()["model_version"] == "1.1.0"  # the latest
    (models_dir / "1.1.0" / "metadata.json").unlink()  # leave the session's registry as it was
    (models_dir / "1.1.0" / "model.joblib").unlink()
    (models_dir / "1.1.0").rmdir()
