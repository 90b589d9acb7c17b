"""Tests of the SKAB evaluation on a small SKAB-format folder built from the simulator."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from common import skab, skab_lofo
from common.data import write_csv
from common.schema import LABELS
from common.simulator import simulate

REAL_SKAB = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "skab"  # beside the repository


def real_skab() -> Path:
    """The SKAB sample; skips the test without it, fails it in CI (CI=true), where it must be there."""
    if not (REAL_SKAB / "valve1").is_dir():
        if os.environ.get("CI") == "true":
            pytest.fail(f"données SKAB absentes : {REAL_SKAB}")
        pytest.skip("SKAB sample not available")
    return REAL_SKAB


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("skab")
    for i, scenario in enumerate(("valve_closure", "cavitation", "valve_closure")):
        frame = simulate(scenario, seed=60 + i, hours=20)
        write_csv(frame.drop(columns="fault"), root / "valve1" / f"{i}.csv")
    write_csv(simulate("cavitation", seed=70, hours=20).drop(columns="fault"), root / "other" / "0.csv")
    normal = simulate("normal", seed=71, hours=24).drop(columns=["fault", *LABELS])
    write_csv(normal, root / "anomaly-free" / "anomaly-free.csv")
    return root


def test_find_files_groups_labelled_files_by_folder_and_finds_anomaly_free(data_dir):
    dataset = skab.find_files(data_dir)
    assert sorted(dataset.labelled) == ["other", "valve1"]
    assert len(dataset.labelled["valve1"]) == 3
    assert dataset.anomaly_free is not None and "anomaly" not in dataset.anomaly_free


class Spy:
    """A detector that records what it was fitted on and flags nothing."""

    seen: list = []

    def __init__(self, seed: int):
        self.threshold_ = 1.0

    def fit(self, frame):
        Spy.seen.append(frame)
        return self

    def score(self, frame):
        return np.zeros(len(frame))


def test_fitting_never_sees_labels_or_test_rows(data_dir):
    dataset = skab.find_files(data_dir)
    Spy.seen = []
    files = dataset.labelled["valve1"]
    skab.protocol_skab(files, Spy, seed=0)
    assert len(Spy.seen) == len(files)
    for seen, frame in zip(Spy.seen, files, strict=True):
        assert not set(LABELS) & set(seen.columns)
        assert len(seen) == skab.TRAIN_ROWS
        assert seen["timestamp"].max() == frame["timestamp"].iloc[skab.TRAIN_ROWS - 1]
    Spy.seen = []
    skab.protocol_anomaly_free(dataset.anomaly_free, files, Spy, seed=0)
    assert len(Spy.seen) == 1 and not set(LABELS) & set(Spy.seen[0].columns)


def test_evaluation_reports_every_protocol_group_pipeline_and_metric(data_dir):
    results = skab.evaluate(skab.find_files(data_dir), seeds=range(2), jobs=2)
    assert set(results) == {"skab", "anomaly_free", "commissioning"}
    assert set(results["skab"]) == {"valve1", "other", "toutes"}
    projects = {name for name in skab.PIPELINES if name.startswith("projet")}
    for protocol, groups in results.items():
        for by_pipeline in groups.values():
            assert set(by_pipeline) == (projects if protocol == "commissioning" else set(skab.PIPELINES))
            for summary in by_pipeline.values():
                assert set(summary) == set(skab.METRICS)
    by_pipeline = results["anomaly_free"]["toutes"]
    project = by_pipeline["projet, réglage par défaut (quantile 99,5 %)"]
    published = by_pipeline["IF brut, contamination 0,0005 (réglage publié)"]
    assert project["auc"][0] > 0.8 and project["f1"][0] > published["f1"][0]


def test_commissioning_sees_only_the_first_rows_of_each_file_without_labels(data_dir):
    dataset = skab.find_files(data_dir)
    Spy.seen = []
    files = dataset.labelled["valve1"]
    with pytest.raises(AttributeError):  # the spy is no AnomalyModel: commissioning reads its features
        skab.protocol_commissioning(dataset.anomaly_free, files, Spy, seed=0)
    assert len(Spy.seen) == 1 and len(Spy.seen[0]) == len(dataset.anomaly_free)
    assert not set(LABELS) & set(Spy.seen[0].columns)


def test_cli_prints_a_french_report(data_dir, capsys):
    assert skab.main([str(data_dir), "--seeds", "1"]) == 0
    out = capsys.readouterr().out
    assert "Protocole 1" in out and "Protocole 2" in out and "IF brut, contamination 0,0005" in out
    assert "Protocole 2 avec mise en service" in out


def test_cli_refuses_a_folder_without_labelled_files(tmp_path, capsys):
    assert skab.main([str(tmp_path)]) == 2
    assert "aucun fichier SKAB étiqueté" in capsys.readouterr().err


def test_injected_faults_change_only_their_rows_and_label_them():
    normal = simulate("normal", seed=72, hours=20).drop(columns=["fault", *LABELS]).iloc[100:]
    rows = skab_lofo.INJECTED_ROWS
    for kind, (columns, _) in skab_lofo.INJECTED.items():
        faulty = skab_lofo.injected(normal, kind)
        assert faulty["anomaly"].sum() == rows.stop - rows.start and faulty["anomaly"].iloc[rows].all()
        others = [c for c in normal.columns if c not in columns]
        assert (faulty[others].to_numpy() == normal[others].to_numpy()).all()
        outside = np.r_[0 : rows.start, rows.stop : len(normal)]
        assert (faulty[columns].to_numpy()[outside] == normal[columns].to_numpy()[outside]).all()
        assert (faulty[columns].iloc[rows].to_numpy() != normal[columns].iloc[rows].to_numpy()).any(), kind
    assert "anomaly" not in normal  # the file itself is left as it was


def test_lofo_cli_reports_the_choice_and_the_injected_faults(data_dir, capsys):
    assert skab_lofo.main([str(data_dir), "--seeds", "1", "--trees", "10"]) == 0
    out = capsys.readouterr().out
    assert "LOFO : F1" in out and "Réglage choisi sur les" in out
    injected = out.split("Pannes injectées")[1].split("\n\n")[1].splitlines()
    assert all(kind in injected[0] for kind in skab_lofo.INJECTED)
    assert len(injected) == 2 + 2 + len(skab_lofo.SET_ASIDE)  # header, rule, before, chosen, set-aside twins
    assert "Protocole 2 avec mise en service" in out


def test_lofo_cli_chooses_on_every_labelled_folder_with_group_toutes(data_dir, capsys):
    assert skab_lofo.main([str(data_dir), "--seeds", "1", "--trees", "10", "--group", "toutes"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("4 fichiers (toutes),")  # valve1's three and other's one
    assert "LOFO : F1" in out and "Réglage choisi sur les 4 fichiers" in out


def test_lofo_cli_refuses_an_unknown_folder_or_a_single_file(data_dir, capsys):
    assert skab_lofo.main([str(data_dir), "--group", "valve9"]) == 2
    assert "pas de dossier « valve9 » (dossiers : other, valve1)" in capsys.readouterr().err
    assert skab_lofo.main([str(data_dir), "--group", "other"]) == 2
    assert "« other » n'a qu'un fichier" in capsys.readouterr().err


def test_lofo_cli_refuses_no_seed_or_no_tree(data_dir, capsys):
    for option in ("--seeds", "--trees"):
        assert skab_lofo.main([str(data_dir), option, "0"]) == 2
        assert "doivent valoir au moins 1" in capsys.readouterr().err


def test_leave_one_file_out_never_chooses_with_the_held_out_file():
    rng = np.random.default_rng(0)
    table = {key: rng.integers(1, 100, size=(2, 5, 5)).astype(float) for key in [("a", 1, "r"), ("b", 1, "r")]}
    scores, chosen = skab_lofo.leave_one_file_out(table, 5)
    assert scores.shape == (2, 3) and len(chosen) == 5
    for i in range(5):  # whatever the held-out file's counts, the choice for it stays
        for key in table:
            changed = {k: v.copy() for k, v in table.items()}
            changed[key][:, i, 0] = 10_000  # a perfect file for that setting
            assert skab_lofo.leave_one_file_out(changed, 5)[1][i] == chosen[i]


@pytest.mark.slow
def test_real_skab_valve1_meets_the_issue_target():
    dataset = skab.find_files(real_skab() / "valve1")
    name = "projet, réglage SKAB (seuil par la queue, choisi par LOFO)"
    results = skab.evaluate(dataset, seeds=range(2), pipelines={name: skab.PIPELINES[name]})
    summary = results["skab"]["."][name]
    assert summary["f1"][0] >= 0.69 and summary["far"][0] <= 5


@pytest.mark.slow
def test_commissioning_makes_protocol_2_usable_on_real_skab():
    dataset = skab.find_files(real_skab())
    make = skab.PIPELINES["projet, réglage SKAB (seuil par la queue, choisi par LOFO)"]
    plain = skab.protocol_anomaly_free(dataset.anomaly_free, dataset.labelled["valve1"], make, seed=0)
    commissioned = skab.protocol_commissioning(dataset.anomaly_free, dataset.labelled["valve1"], make, seed=0)
    assert plain["far"] > 90  # another operating point: everything is an alarm
    assert commissioned["far"] < 4 and commissioned["f1"] > 0.68
