"""A commissioned equipment is a model version of its own: registered, loaded and scored like any version."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pandas as pd
import pytest

from common import baseline as commissioning
from common.baseline import COMMISSIONING_READINGS, commission, commission_version, score_with_baseline
from common.data import frame_from_readings, write_csv
from common.incremental import IncrementalScorer
from common.registry import RegistryError, latest_version, list_versions, load, read_metadata
from common.schema import SENSOR_NAMES
from common.simulator import simulate
from common.windows import trailing_mean

# Another pump, at another operating point: twice the flow and current, three times the vibrations.
SCALE = {"volume_flow_rate_rms": 2.0, "current": 2.0, "accelerometer1_rms": 3.0, "accelerometer2_rms": 3.0}
VERSION = "1.0.0-p101"


def bigger_pump(seed: int = 80, hours: float = 24, equipment: str = "P-101") -> pd.DataFrame:
    frame = simulate("normal", seed=seed, hours=hours, equipment_id=equipment)
    for name, factor in SCALE.items():
        frame[name] = frame[name] * factor
    return frame


@pytest.fixture
def registry(tmp_path, models_dir):
    """A registry of its own holding the session's 1.0.0 (the version commissioned from)."""
    root = tmp_path / "models"
    root.mkdir()
    shutil.copytree(models_dir / "1.0.0", root / "1.0.0")
    return root


@pytest.fixture
def first_readings(tmp_path) -> str:
    path = tmp_path / "premieres_lectures.csv"
    write_csv(bigger_pump().iloc[:COMMISSIONING_READINGS], path)
    return str(path)


@pytest.fixture
def commissioned_version(registry, first_readings):
    commission_version("1.0.0", VERSION, "P-101", first_readings, path=registry)
    return load(VERSION, registry)


def test_a_commissioned_version_scores_as_score_with_baseline_on_every_path(registry, commissioned_version):
    parent = load("1.0.0", registry).model
    model = commissioned_version.model
    frame = bigger_pump()
    expected_baseline = commission(parent, frame, floor=True)
    expected = score_with_baseline(parent, expected_baseline, frame)
    assert model.threshold_ == expected_baseline.threshold
    assert model.feature_offset_ == expected_baseline.offset

    assert len(frame) > 256  # scikit-learn's compiled walk, tree by tree (common.fast_forest)
    np.testing.assert_array_equal(model.score(frame), expected)
    small = frame.iloc[:200]  # the level-wise walk of small batches
    np.testing.assert_array_equal(model.score(small), expected[:200])
    reading = {name: float(frame[name].iloc[500]) for name in SENSOR_NAMES}
    alone = score_with_baseline(parent, expected_baseline, frame_from_readings([reading]))[0]
    assert model.score_reading(reading) == alone  # a reading scored alone (POST /predict)
    stream = IncrementalScorer(model)
    streamed = np.concatenate([stream.score(frame.iloc[i : i + 1]) for i in range(300)])
    np.testing.assert_array_equal(streamed, expected[:300])  # the stream, a reading at a time
    # scikit-learn's own forest on the moved features: the reference the fast paths are tested against
    x = parent.features(frame) + np.asarray(expected_baseline.offset)
    plain = trailing_mean(frame, -parent.forest_.score_samples(x), parent.smoothing)
    np.testing.assert_allclose(model.score(frame), plain, rtol=1e-12)


def test_commissioning_brings_the_other_pump_back_to_normal_and_still_sees_its_faults(registry, commissioned_version):
    parent, model = load("1.0.0", registry).model, commissioned_version.model
    later = bigger_pump(seed=80).iloc[COMMISSIONING_READINGS:]
    assert parent.predict(later).mean() > 0.9  # the general model: another pump is all alarms
    assert model.predict(later).mean() < 0.02
    fault = simulate("valve_closure", seed=81, hours=24, equipment_id="P-101")
    for name, factor in SCALE.items():
        fault[name] = fault[name] * factor
    faulty = fault["anomaly"].to_numpy() == 1
    assert model.predict(fault)[faulty].mean() > 0.9


def test_the_version_says_where_it_comes_from_and_the_general_model_stays_the_latest(registry, commissioned_version):
    meta, parent = commissioned_version.metadata, read_metadata("1.0.0", registry)
    assert meta["commissioning"]["from_version"] == "1.0.0"
    assert meta["commissioning"]["equipment"] == "P-101"
    assert meta["commissioning"]["readings"] == COMMISSIONING_READINGS - commissioned_version.model.window + 1
    assert meta["commissioning"]["data"]["rows"] == COMMISSIONING_READINGS
    assert meta["training_data"] == parent["training_data"]  # the forest is the parent's, not retrained
    assert meta["threshold"] >= parent["threshold"]  # the model's threshold is the floor by default
    assert meta["reference"]["rows"] == meta["commissioning"]["readings"]  # drift: the pump's own normal state
    assert meta["reference"]["inputs"]["current"] != parent["reference"]["inputs"]["current"]
    assert len(meta["sha256"]) == 64
    assert list_versions(registry) == [VERSION, "1.0.0"]  # semantic versioning: a pre-release sorts first
    assert latest_version(registry) == "1.0.0"


def test_an_edited_offset_is_refused_at_loading(registry, commissioned_version):
    path = registry / VERSION / "metadata.json"
    meta = json.loads(path.read_text(encoding="utf-8"))
    meta["feature_offset"][0] += 0.5
    path.write_text(json.dumps(meta), encoding="utf-8")
    with pytest.raises(RegistryError, match="feature_offset"):
        load(VERSION, registry)


def test_the_command_registers_the_version_and_says_how_to_serve_it(registry, first_readings, capsys):
    argv = ["--modele", "1.0.0", "--version", VERSION, "--equipement", "P-101", first_readings]
    assert commissioning.main([*argv, "--models-dir", str(registry)]) == 0
    out = capsys.readouterr().out
    assert f"Version {VERSION} enregistrée" in out and f"MODEL_VERSION={VERSION}" in out
    assert f"POST /admin/models/{VERSION}/deploy" in out
    assert load(VERSION, registry).metadata["commissioning"]["floor"] is True
    assert (
        commissioning.main([*argv[:3], "1.0.1-p101", *argv[4:], "--seuil-propre", "--models-dir", str(registry)]) == 0
    )
    own = load("1.0.1-p101", registry).metadata
    assert (
        own["commissioning"]["floor"] is False
        and own["feature_offset"] == read_metadata(VERSION, registry)["feature_offset"]
    )


def _bad_file(tmp_path, kind: str) -> str:
    path = tmp_path / f"{kind}.csv"
    if kind == "trop_court":
        write_csv(bigger_pump().iloc[:100], path)
    elif kind == "virgules":
        write_csv(bigger_pump().iloc[:COMMISSIONING_READINGS], path)
        path.write_text(path.read_text(encoding="utf-8").replace(";", ","), encoding="utf-8")
    elif kind == "autre_pompe":
        write_csv(bigger_pump(equipment="P-102").iloc[:COMMISSIONING_READINGS], path, with_equipment=True)
    elif kind == "dossier":
        path = tmp_path
    return str(path)


@pytest.mark.parametrize(
    ("case", "parent", "version", "file", "extra", "message"),
    [
        ("trop peu de relevés", "1.0.0", VERSION, "trop_court", [], "100 relevé(s) dans le fichier, il en faut 400"),
        ("--lectures trop petit", "1.0.0", VERSION, "bon", ["--lectures", "5"], "--lectures : au moins"),
        ("modèle inconnu", "9.9.9", VERSION, "bon", [], "version 9.9.9 introuvable"),
        ("version existante", "1.0.0", "1.0.0", "bon", [], "existe déjà"),
        ("version mal formée", "1.0.0", "1.0.0-", "bon", [], "invalide"),
        ("CSV invalide", "1.0.0", VERSION, "virgules", [], "séparateur incorrect"),
        ("fichier absent", "1.0.0", VERSION, "absent", [], "absent.csv introuvable"),
        ("un dossier", "1.0.0", VERSION, "dossier", [], "illisible"),
        ("pas cet équipement", "1.0.0", VERSION, "autre_pompe", [], "P-101 : 0 relevé(s)"),
    ],
)
def test_bad_inputs_give_a_french_message_exit_2_and_write_nothing(
    registry, tmp_path, first_readings, capsys, case, parent, version, file, extra, message
):
    path = first_readings if file == "bon" else _bad_file(tmp_path, file)
    before = sorted(p.name for p in registry.iterdir())
    argv = ["--modele", parent, "--version", version, "--equipement", "P-101", path, *extra]
    assert commissioning.main([*argv, "--models-dir", str(registry)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("Erreur : ") and message in err
    assert sorted(p.name for p in registry.iterdir()) == before  # nothing written, not even a staging folder


def test_a_commissioned_version_cannot_be_commissioned_again(registry, first_readings, commissioned_version, capsys):
    argv = ["--modele", VERSION, "--version", "1.0.0-p102", "--equipement", "P-101", first_readings]
    assert commissioning.main([*argv, "--models-dir", str(registry)]) == 2
    assert "déjà mise en service pour P-101 : partez de la version d'origine, 1.0.0" in capsys.readouterr().err
    assert list_versions(registry) == [VERSION, "1.0.0"]


def test_a_general_version_is_written_and_read_as_before(models_dir):
    """Nothing of commissioning in a general version: registries written before it load unchanged."""
    meta = read_metadata("1.0.0", models_dir)
    assert "feature_offset" not in meta and "commissioning" not in meta
    model = load("1.0.0", models_dir).model
    assert "feature_offset_" not in vars(model) and model.feature_offset_ is None
