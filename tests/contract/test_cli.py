"""The colleague's command line and the training script, in every stage that has them (1 and 2)."""

from __future__ import annotations

import pandas as pd
import pytest

from common.data import load_csv, write_csv
from common.registry import list_versions, load
from common.schema import EXAMPLE_READING
from common.simulator import simulate
from tests.contract.conftest import WITH_FORM, stage_module


@pytest.fixture(params=WITH_FORM)
def predict(request, stage_env):
    return stage_module(request.param, "predict")


@pytest.fixture(params=WITH_FORM)
def train(request):
    return stage_module(request.param, "train")


def reading_args(**changes) -> list[str]:
    values = {**EXAMPLE_READING, **changes}
    return [arg for name, v in values.items() for arg in ("--" + name.replace("_", "-"), str(v))]


def test_one_normal_reading(predict, capsys):
    assert predict.main(reading_args()) == 0
    out = capsys.readouterr().out
    assert "Décision : Normal" in out and "modèle 1.0.0" in out


def test_one_abnormal_reading(predict, capsys):
    abnormal = reading_args(accelerometer1_rms=0.3, volume_flow_rate_rms=8.0, pressure=0.9)
    assert predict.main(abnormal) == 0
    assert "Décision : Anomalie" in capsys.readouterr().out


def test_decimal_comma_is_read_as_a_decimal_point(predict, capsys):
    assert predict.main(reading_args(current=1.2)) == 0
    with_point = capsys.readouterr().out
    args = reading_args()
    args[args.index("--current") + 1] = "1,2"
    assert predict.main(args) == 0
    with_comma = capsys.readouterr().out
    assert with_comma.startswith("Décision : Normal (score ") and with_comma == with_point


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (reading_args(voltage=9000), "voltage : 9000 V est hors de la plage"),
        (reading_args(current="abc"), "current : « abc » n'est pas un nombre"),
        (reading_args(current="nan"), "current : valeur manquante (NaN)"),
        (reading_args()[2:], "accelerometer1_rms : valeur manquante (option --accelerometer1-rms)"),
        ([], "donnez un fichier CSV"),
        (["absent.csv"], "fichier introuvable"),
    ],
)
def test_bad_input_exits_2_with_french_message(predict, capsys, args, expected):
    assert predict.main(args) == 2
    assert expected in capsys.readouterr().err


def test_scores_a_file_and_writes_the_result(predict, tmp_path, capsys):
    source = tmp_path / "vanne.csv"
    write_csv(simulate("valve_closure", seed=321, hours=12), source)
    assert predict.main([str(source)]) == 0
    out = capsys.readouterr().out
    assert "720 mesures analysées avec le modèle 1.0.0" in out
    result = pd.read_csv(tmp_path / "vanne_scores.csv", sep=";")
    assert {"score", "decision", "anomaly"} <= set(result.columns) and len(result) == 720
    alarms = result["decision"] == "Anomalie"
    assert alarms.sum() > 0
    assert result.loc[alarms, "anomaly"].mean() > 0.5  # most alarms fall in the fault window


def test_bad_file_exits_2(predict, tmp_path, capsys):
    bad = tmp_path / "bad.csv"
    bad.write_text("a,b\n1,2\n")
    assert predict.main([str(bad)]) == 2
    assert "séparateur incorrect" in capsys.readouterr().err


def test_no_model_says_how_to_get_one(predict, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("MODELS_DIR", str(tmp_path))
    assert predict.main(reading_args()) == 2
    assert "make model" in capsys.readouterr().err


def test_train_registers_a_version_and_refuses_to_overwrite(train, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("MODELS_DIR", str(tmp_path))
    monkeypatch.setattr(train, "TRAINING_HOURS", 12.0)
    monkeypatch.setattr(train, "evaluate", lambda model: {"stub": True})  # evaluation has its own tests
    assert train.main(["--version", "2.0.0"]) == 0
    assert list_versions(tmp_path) == ["2.0.0"]
    assert train.main(["--version", "2.0.0"]) == 2
    assert "existe déjà" in capsys.readouterr().err
    assert train.main(["--version", "2.0"]) == 2


def test_train_from_labelled_files_uses_only_normal_rows(train, tmp_path, monkeypatch):
    monkeypatch.setenv("MODELS_DIR", str(tmp_path / "models"))
    monkeypatch.setattr(train, "evaluate", lambda model: {})
    files = tmp_path / "csv"
    write_csv(simulate("overheating", seed=5, hours=12), files / "a.csv")
    write_csv(simulate("normal", seed=6, hours=12), files / "b.csv")
    assert train.main(["--version", "1.0.0", "--data", str(files)]) == 0
    meta = load("1.0.0", tmp_path / "models").metadata
    normal_rows = sum(int((load_csv(f)["anomaly"] == 0).sum()) for f in sorted(files.glob("*.csv")))
    assert meta["training_data"]["rows"] == normal_rows


def test_retraining_with_the_same_inputs_gives_the_same_scores(train, tmp_path, monkeypatch):
    monkeypatch.setattr(train, "TRAINING_HOURS", 12.0)
    monkeypatch.setattr(train, "evaluate", lambda model: {})
    train.train("1.0.0", models_dir=tmp_path / "a")
    train.train("1.0.0", models_dir=tmp_path / "b")
    a, b = load("1.0.0", tmp_path / "a"), load("1.0.0", tmp_path / "b")
    sample = simulate("cavitation", seed=99, hours=6)
    assert (a.model.score(sample) == b.model.score(sample)).all()
