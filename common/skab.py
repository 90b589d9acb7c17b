"""Evaluate detection on real SKAB files, beside SKAB's raw IsolationForest baseline.

Two protocols, each over several seeds (the forests' ``random_state``):

1. SKAB's own (outlier detection): every labelled file is split without shuffling,
   the first ``TRAIN_ROWS`` rows train one model for that file, the rest are its
   test rows; the confusion matrix is pooled over the test rows of all files.
2. Closer to the service: one model trained on ``anomaly-free.csv`` scores every
   row of every labelled file.
3. Protocol 2 with commissioning: the same model, commissioned on each file's first
   ``TRAIN_ROWS`` rows (``common.baseline``: its features moved onto the training
   state, its own threshold), scores the file's later rows, pooled as in protocol 1.

Whatever the pipeline, fitting goes through ``fit_on_sensors``, which receives the
training rows stripped of their label columns: no fitting code can see a label,
and each threshold comes from training rows only. Test rows are scored with the
readings before them (as a stream would), which carries no label either.

    python -m common.skab ../shared/data/skab --seeds 5
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np
import pandas as pd
from sklearn.ensemble import IsolationForest
from sklearn.metrics import roc_auc_score

from common.baseline import Commissioned
from common.data import DataError, load_csv
from common.metrics import confusion, rates
from common.model import AnomalyModel
from common.schema import EQUIPMENT_ID, SENSOR_NAMES, TIMESTAMP

TRAIN_ROWS = 400  # SKAB's split: the first 400 rows of each file train, the rest test
ANOMALY_FREE = "anomaly-free"
METRICS = ("f1", "far", "mar", "auc")


class Detector(Protocol):
    threshold_: float

    def fit(self, frame: pd.DataFrame) -> Detector: ...

    def score(self, frame: pd.DataFrame) -> np.ndarray: ...


class RawIsolationForest:
    """SKAB's baseline: an IsolationForest on the eight raw values of each reading.

    As in SKAB's notebook, ``contamination`` sets the threshold: that share of the
    training rows scores above it.
    """

    def __init__(self, contamination: float, random_state: int = 0):
        self.contamination = contamination
        self.random_state = random_state

    def fit(self, frame: pd.DataFrame) -> RawIsolationForest:
        x = frame[list(SENSOR_NAMES)].to_numpy(dtype="float64")
        self.forest_ = IsolationForest(contamination=self.contamination, random_state=self.random_state).fit(x)
        self.threshold_ = float(-self.forest_.offset_)  # sklearn flags score_samples < offset_
        return self

    def score(self, frame: pd.DataFrame) -> np.ndarray:
        return -self.forest_.score_samples(frame[list(SENSOR_NAMES)].to_numpy(dtype="float64"))


# The project's setting for SKAB (400 training rows, 1 Hz), chosen by leave-one-file-out
# on valve1 (``python -m common.skab_lofo``, docs/annexes/modele.md): the mean flow among the
# features, the threshold from the tail of the training scores at this rate. 300 trees, not
# 100: that threshold lies in the far tail of 400 scores, where 100 trees' noise shows (the
# spread over seeds of the LOFO F1 falls from 0.042 to 0.012).
SKAB_TAIL_RATE = 0.001
SKAB_SETTING = {"n_estimators": 300, "flow_mean": True, "tail_rate": SKAB_TAIL_RATE}

# Pipelines compared, by the French name a report shows; each builds a detector from a seed.
PIPELINES: dict[str, Callable[[int], Detector]] = {
    "projet, réglage SKAB (seuil par la queue, choisi par LOFO)": lambda seed: AnomalyModel(
        random_state=seed, **SKAB_SETTING
    ),
    "projet, réglage par défaut (quantile 99,5 %)": lambda seed: AnomalyModel(random_state=seed),
    "IF brut, contamination 0,0005 (réglage publié)": lambda seed: RawIsolationForest(0.0005, seed),
    "IF brut, contamination 0,01": lambda seed: RawIsolationForest(0.01, seed),
}


def sensors_only(frame: pd.DataFrame) -> pd.DataFrame:
    """The frame without its label columns: what a fitting function may see."""
    return frame[[TIMESTAMP, EQUIPMENT_ID, *SENSOR_NAMES]]


def fit_on_sensors(make: Callable[[int], Detector], seed: int, training: pd.DataFrame) -> Detector:
    """Fit a detector on training rows, labels removed before the detector sees them."""
    return make(seed).fit(sensors_only(training))


def margins(detector: Detector, frame: pd.DataFrame) -> np.ndarray:
    """Score minus threshold of every row: positive means an alarm."""
    return detector.score(sensors_only(frame)) - detector.threshold_


@dataclass
class Dataset:
    """SKAB files found under a folder: labelled files by subfolder, and the anomaly-free file."""

    labelled: dict[str, list[pd.DataFrame]]
    anomaly_free: pd.DataFrame | None


def find_files(data_dir: Path) -> Dataset:
    """Load every SKAB CSV under ``data_dir``: labelled ones, grouped by folder, and anomaly-free.csv.

    Raises DataError (French) if no labelled file is found or a file cannot be read.
    """
    labelled: dict[str, list[pd.DataFrame]] = {}
    anomaly_free = None
    paths = sorted(data_dir.rglob("*.csv"), key=lambda p: (str(p.parent), _natural(p.stem)))
    for path in paths:
        try:
            frame = load_csv(path, equipment_id=f"{path.parent.name}/{path.stem}")
        except DataError as exc:
            raise DataError(f"{path} : {exc}") from None
        if path.stem == ANOMALY_FREE:
            anomaly_free = frame
        elif "anomaly" in frame:
            folder = str(path.parent.relative_to(data_dir)) if path.parent != data_dir else "."
            labelled.setdefault(folder, []).append(frame)
    if not labelled:
        raise DataError(f"aucun fichier SKAB étiqueté (colonne « anomaly ») sous {data_dir}")
    return Dataset(labelled, anomaly_free)


def _natural(stem: str) -> tuple:
    return (0, int(stem), "") if stem.isdigit() else (1, 0, stem)


def _metrics(y_true: np.ndarray, margin: np.ndarray) -> dict[str, float]:
    r = rates(confusion(y_true, margin > 0))
    auc = roc_auc_score(y_true, margin) if 0 < y_true.sum() < len(y_true) else float("nan")
    return {"f1": r["f1"], "far": r["far"], "mar": r["mar"], "auc": float(auc)}


def protocol_skab(files: list[pd.DataFrame], make: Callable[[int], Detector], seed: int) -> dict[str, float]:
    """SKAB's protocol: one model per file on its first rows, test rows pooled."""
    truth, margin = [], []
    for frame in files:
        detector = fit_on_sensors(make, seed, frame.iloc[:TRAIN_ROWS])
        margin.append(margins(detector, frame)[TRAIN_ROWS:])
        truth.append(frame["anomaly"].to_numpy()[TRAIN_ROWS:])
    return _metrics(np.concatenate(truth), np.concatenate(margin))


def protocol_anomaly_free(
    training: pd.DataFrame, files: list[pd.DataFrame], make: Callable[[int], Detector], seed: int
) -> dict[str, float]:
    """One model trained on anomaly-free data scores every row of every labelled file."""
    detector = fit_on_sensors(make, seed, training)
    margin = np.concatenate([margins(detector, frame) for frame in files])
    truth = np.concatenate([frame["anomaly"].to_numpy() for frame in files])
    return _metrics(truth, margin)


def protocol_commissioning(
    training: pd.DataFrame, files: list[pd.DataFrame], make: Callable[[int], Detector], seed: int
) -> dict[str, float]:
    """One model trained on anomaly-free data, commissioned on each file's first rows, scores the rest."""
    model = fit_on_sensors(make, seed, training)
    truth, margin = [], []
    for frame in files:
        detector = fit_on_sensors(lambda _: Commissioned(model), seed, frame.iloc[:TRAIN_ROWS])
        margin.append(margins(detector, frame)[TRAIN_ROWS:])
        truth.append(frame["anomaly"].to_numpy()[TRAIN_ROWS:])
    return _metrics(np.concatenate(truth), np.concatenate(margin))


def summarise(runs: list[dict[str, float]]) -> dict[str, tuple[float, float]]:
    """Mean and standard deviation over seeds of each metric."""
    return {m: (float(np.mean([r[m] for r in runs])), float(np.std([r[m] for r in runs]))) for m in METRICS}


_TASKS: dict = {}  # what forked workers read: set just before the pool starts


def _run(key: tuple[str, str, str, int]) -> dict[str, float]:
    protocol, group, name, seed = key
    files, anomaly_free, pipelines = _TASKS["groups"][group], _TASKS["anomaly_free"], _TASKS["pipelines"]
    if protocol == "skab":
        return protocol_skab(files, pipelines[name], seed)
    if protocol == "commissioning":
        return protocol_commissioning(anomaly_free, files, pipelines[name], seed)
    return protocol_anomaly_free(anomaly_free, files, pipelines[name], seed)


def evaluate(dataset: Dataset, seeds=range(5), pipelines=None, jobs: int = 1) -> dict[str, dict[str, dict]]:
    """Results by protocol, then group of files, then pipeline: ``{metric: (mean, std)}``.

    Groups are the folders of labelled files, plus "toutes" when there are several.
    Protocol 2, with and without commissioning, is left out when there is no anomaly-free
    file; commissioning is evaluated for the project's pipelines only (``AnomalyModel``).
    ``jobs`` > 1 runs the seeds in that many forked processes (same results, in less time).
    """
    pipelines = pipelines or PIPELINES
    groups = dict(dataset.labelled)
    if len(groups) > 1:
        groups["toutes"] = [f for files in dataset.labelled.values() for f in files]
    protocols = ["skab"] + (["anomaly_free", "commissioning"] if dataset.anomaly_free is not None else [])
    names = {
        p: [n for n in pipelines if p != "commissioning" or isinstance(pipelines[n](0), AnomalyModel)]
        for p in protocols
    }
    keys = [(p, g, name, seed) for p in protocols for g in groups for name in names[p] for seed in seeds]
    _TASKS.update(groups=groups, anomaly_free=dataset.anomaly_free, pipelines=pipelines)
    if jobs > 1 and "fork" in multiprocessing.get_all_start_methods():
        with multiprocessing.get_context("fork").Pool(jobs) as pool:
            runs = dict(zip(keys, pool.map(_run, keys), strict=True))
    else:
        runs = {key: _run(key) for key in keys}
    return {
        p: {g: {name: summarise([runs[(p, g, name, s)] for s in seeds]) for name in names[p]} for g in groups}
        for p in protocols
    }


def table(by_pipeline: dict[str, dict]) -> str:
    """Markdown table (French) of one group's results: mean ± standard deviation over seeds."""
    lines = ["| pipeline | F1 | FAR % | MAR % | ROC-AUC |", "|---|---|---|---|---|"]
    for name, s in by_pipeline.items():
        f1, far, mar, auc = (s[m] for m in METRICS)
        lines.append(
            f"| {name} | {f1[0]:.3f} ± {f1[1]:.3f} | {far[0]:.1f} ± {far[1]:.1f} "
            f"| {mar[0]:.1f} ± {mar[1]:.1f} | {auc[0]:.3f} ± {auc[1]:.3f} |"
        )
    return "\n".join(lines)


TITLES = {
    "skab": f"Protocole 1 (celui de SKAB) : un modèle par fichier, entraîné sur ses {TRAIN_ROWS} premières lignes, "
    "testé sur les suivantes (matrice de confusion cumulée)",
    "anomaly_free": "Protocole 2 : un seul modèle entraîné sur anomaly-free.csv, qui note toutes les lignes "
    "de chaque fichier étiqueté",
    "commissioning": f"Protocole 2 avec mise en service : le même modèle, étalonné sur les {TRAIN_ROWS} premières "
    "lignes de chaque fichier (common/baseline.py), note les suivantes",
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m common.skab", description="Évalue la détection sur des fichiers SKAB réels."
    )
    parser.add_argument("data_dir", type=Path, help="dossier contenant des fichiers SKAB (sous-dossiers compris)")
    parser.add_argument("--seeds", type=int, default=5, help="nombre de graines (défaut : 5)")
    args = parser.parse_args(argv)
    if not args.data_dir.is_dir():
        print(f"Erreur : {args.data_dir} n'est pas un dossier", file=sys.stderr)
        return 2
    if args.seeds < 1:
        print("Erreur : --seeds doit valoir au moins 1", file=sys.stderr)
        return 2
    try:
        dataset = find_files(args.data_dir)
    except DataError as exc:
        print(f"Erreur : {exc}", file=sys.stderr)
        return 2
    results = evaluate(dataset, seeds=range(args.seeds), jobs=min(os.cpu_count() or 1, args.seeds))
    found = ", ".join(f"{g} ({len(f)} fichiers)" for g, f in dataset.labelled.items())
    print(f"Fichiers étiquetés : {found}. Anomaly-free : {'oui' if dataset.anomaly_free is not None else 'absent'}.")
    print(f"Moyenne ± écart-type sur {args.seeds} graines ; FAR et MAR en %.")
    for protocol, groups in results.items():
        print(f"\n{TITLES[protocol]}")
        for group, by_pipeline in groups.items():
            print(f"\nDossier {group} :\n{table(by_pipeline)}")
    if "anomaly_free" not in results:
        print("\nProtocole 2 non évalué : pas de fichier anomaly-free.csv.")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
