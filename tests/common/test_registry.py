"""The model registry: versions typed by a person, never overwritten, sha256 checked."""

from __future__ import annotations

import json

import numpy as np
import pytest

from common import registry
from common.model import AnomalyModel
from common.registry import RegistryError, list_versions, load, save


@pytest.fixture
def fitted(training_frame):
    return AnomalyModel(n_estimators=20).fit(training_frame)


def test_save_writes_artifact_and_complete_metadata(tmp_path, fitted, training_frame):
    folder = save(fitted, "0.1.0", training_frame, metrics={"f1": 0.5}, path=tmp_path)
    meta = json.loads((folder / "metadata.json").read_text())
    for key in (
        "version",
        "created_at",
        "git_commit",
        "training_data",
        "features",
        "window",
        "params",
        "threshold",
        "sha256",
        "libraries",
        "metrics",
        "reference",
    ):
        assert key in meta, key
    assert meta["training_data"]["rows"] == len(training_frame)
    assert meta["training_data"]["fingerprint"] == registry.fingerprint(training_frame)
    assert meta["threshold"] == fitted.threshold_
    assert len(meta["reference"]["inputs"]["current"]) == 101
    assert meta["sha256"] == registry.sha256_file(folder / "model.joblib")


def test_load_gives_the_same_scores(tmp_path, fitted, training_frame):
    save(fitted, "0.1.0", training_frame, path=tmp_path)
    loaded = load("0.1.0", tmp_path)
    assert loaded.version == "0.1.0"
    sample = training_frame.head(200)
    assert np.array_equal(loaded.model.score(sample), fitted.score(sample))


def test_existing_version_is_never_overwritten(tmp_path, fitted, training_frame):
    save(fitted, "0.1.0", training_frame, path=tmp_path)
    before = (tmp_path / "0.1.0" / "model.joblib").read_bytes()
    with pytest.raises(RegistryError, match="existe déjà"):
        save(AnomalyModel(n_estimators=5).fit(training_frame), "0.1.0", training_frame, path=tmp_path)
    assert (tmp_path / "0.1.0" / "model.joblib").read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["0.1.0"]  # no staging folder left behind


def test_tampered_artifact_is_refused(tmp_path, fitted, training_frame):
    folder = save(fitted, "0.1.0", training_frame, path=tmp_path)
    artifact = folder / "model.joblib"
    data = bytearray(artifact.read_bytes())
    data[-10] ^= 0xFF
    artifact.write_bytes(bytes(data))
    with pytest.raises(RegistryError, match="sha256.*chargement refusé"):
        load("0.1.0", tmp_path)


def test_missing_artifact_and_unknown_version(tmp_path, fitted, training_frame):
    folder = save(fitted, "0.1.0", training_frame, path=tmp_path)
    with pytest.raises(RegistryError, match="version 9.9.9 introuvable.*0.1.0"):
        load("9.9.9", tmp_path)
    (folder / "model.joblib").unlink()
    with pytest.raises(RegistryError, match="absent"):
        load("0.1.0", tmp_path)


@pytest.mark.parametrize("bad", ["1.0", "v1.0.0", "1.0.0.0", "01.0.0", "latest", "../1.0.0"])
def test_malformed_versions_are_refused(tmp_path, fitted, training_frame, bad):
    with pytest.raises(RegistryError, match="invalide"):
        save(fitted, bad, training_frame, path=tmp_path)


def test_versions_sort_semantically_and_latest_is_loaded(tmp_path, fitted, training_frame):
    for v in ("1.2.0", "1.10.0", "1.9.3"):
        save(fitted, v, training_frame, path=tmp_path)
    assert list_versions(tmp_path) == ["1.2.0", "1.9.3", "1.10.0"]
    assert load(None, tmp_path).version == "1.10.0"


def test_empty_registry_says_how_to_fix(tmp_path):
    with pytest.raises(RegistryError, match="make model"):
        load(None, tmp_path / "nothing")


def test_list_command(tmp_path, fitted, training_frame, capsys):
    save(fitted, "0.1.0", training_frame, path=tmp_path)
    assert registry.main(["list", "--models-dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "version" in out and "0.1.0" in out


def test_a_model_registered_before_the_tail_and_flow_parameters_still_loads(tmp_path, training_frame):
    """A registry written by an earlier version (params without tail_rate and flow_mean) is not refused."""
    save(AnomalyModel(n_estimators=20).fit(training_frame), "1.0.0", training_frame, path=tmp_path)
    meta_path = tmp_path / "1.0.0" / "metadata.json"
    metadata = json.loads(meta_path.read_text(encoding="utf-8"))
    assert "tail_rate" not in metadata["params"] and "flow_mean" not in metadata["params"]
    assert load("1.0.0", tmp_path).model.threshold_ == metadata["threshold"]
    tailed = AnomalyModel(n_estimators=20, tail_rate=0.001).fit(training_frame)
    save(tailed, "1.1.0", training_frame, path=tmp_path)
    assert load("1.1.0", tmp_path).model.get_params()["tail_rate"] == 0.001
