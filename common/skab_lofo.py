"""Leave-one-file-out choice of the SKAB setting: how ``SKAB_TAIL_RATE`` and the features were chosen.

Settings compared (the forest is ``AnomalyModel``'s, of ``--trees`` trees, fitted on
each file's first ``TRAIN_ROWS`` rows, labels removed as in ``common.skab``): with or
without the ``log_flow_mean`` feature, smoothing over 5 to 30 readings, the quantile
threshold rule or the tail rule at several rates. Set-aside feature sets are measured
beside them, never chosen. For each of the 16 files, the setting is chosen on the 15
others (highest pooled F1 among the settings whose pooled FAR stays at most
``FAR_BUDGET`` %) and scores the 16th; the 16 held-out confusion matrices are
pooled: that is the leave-one-file-out (LOFO) figure, an estimate for files the choice
never saw. Beside it, the plain figure of each setting on all 16 files, and its false
alarm rate on ``anomaly-free.csv`` cut into files of ``CHUNK_ROWS`` rows (same
protocol: normal operation at another operating point, no label needed), and its
recall of faults injected into those files (``INJECTED``: faults valve1 does not
contain, at another operating point). Then the same choice, by the same rule, among the
variants of protocol 2 with commissioning.

    python -m common.skab_lofo ../shared/data/skab --seeds 5 [--trees 300] [--group toutes]
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.ensemble import IsolationForest

from common.baseline import Commissioned
from common.data import DataError
from common.features import feature_names
from common.metrics import confusion, rates
from common.model import AnomalyModel, alarm_threshold
from common.skab import PIPELINES, SKAB_SETTING, TRAIN_ROWS, find_files, fit_on_sensors, margins, sensors_only
from common.windows import series_layout, trailing_mean_of_values

FAR_BUDGET = 5.0  # % on the 15 files: the project's valve1 false alarm rate before this study
CHUNK_ROWS = 1175  # anomaly-free.csv cut into 8 files of about a SKAB file's length
BEFORE = ("sans débit moyen", 10, "quantile 0.995")  # the project's setting before this study
# Feature sets compared: the columns of ``feature_names`` each leaves out (by name prefix).
FEATURE_SETS = {"sans débit moyen": ("log_flow_mean",), "avec débit moyen": ()}
# Measured but never chosen: each leaves out the feature of a fault valve1 does not contain (a stuck
# pressure gauge or thermocouple, a worn bearing), whatever it does on valve1 (docs/annexes/modele.md).
SET_ASIDE = {
    "avec débit moyen, sans écart-type de pression": ("pressure_logstd",),
    "avec débit moyen, sans écarts-types": ("pressure_logstd", "thermocouple_logstd"),
    "avec débit moyen, sans rapport des vibrations": ("vibration_ratio",),
}
SMOOTHINGS = (5, 10, 20, 30)
ALL_GROUPS = "toutes"  # --group: every labelled folder together (the whole benchmark)
# Faults injected into rows INJECTED_ROWS of each anomaly-free file (after its training rows):
# a second check, like the simulator's, of what valve1 cannot test. Columns, and their new values.
INJECTED_ROWS = slice(600, 1000)
INJECTED_SEEDS = 2  # at most: 48 more files to score
INJECTED = {
    "vibration côté 1 × 1,3": (["accelerometer1_rms"], lambda v: v * 1.3),
    "vibrations × 1,3": (["accelerometer1_rms", "accelerometer2_rms"], lambda v: v * 1.3),
    "débit − 3 %": (["volume_flow_rate_rms"], lambda v: v * 0.97),
    "courant + 5 %": (["current"], lambda v: v * 1.05),
    "thermocouple bloqué": (["thermocouple"], lambda v: np.repeat(v[:1], len(v), axis=0)),
    "manomètre bloqué": (["pressure"], lambda v: np.repeat(v[:1], len(v), axis=0)),
}
# The quantile rule as it was, then the tail rule at rates from 1 % to 0.02 %. Not the
# maximum of the training scores (quantile 1): its level grows with the training length,
# so a rate chosen on 400 rows would mean nothing on the 21,600 of the default model.
RULES = {
    "quantile 0.995": (0.995, None),
    **{f"queue {r:g}": (0.995, r) for r in (0.01, 0.005, 0.003, 0.002, 0.0015, 0.001, 0.0007, 0.0005, 0.0003, 0.0002)},
}


def isolation_scores(
    frame: pd.DataFrame, left_out: tuple[str, ...], seed: int, trees: int
) -> tuple[np.ndarray, np.ndarray]:
    """Unsmoothed isolation scores of every row of a file, from a forest of ``trees`` fitted on its first rows.

    Returns the scores and the mask of training rows whose features are complete.
    """
    model = AnomalyModel(random_state=seed, n_estimators=trees)
    x = model.features(sensors_only(frame))
    names = feature_names(model.window)
    x = x[:, [i for i, name in enumerate(names) if not name.startswith(left_out)]]
    training = x[:TRAIN_ROWS]
    complete = ~np.isnan(training).any(axis=1)
    forest = IsolationForest(
        n_estimators=model.n_estimators, max_samples=min(model.max_samples, int(complete.sum())), random_state=seed
    ).fit(training[complete])
    return -forest.score_samples(x), complete


def counts(frame: pd.DataFrame, raw: np.ndarray, complete: np.ndarray, smoothing: int, rule: tuple) -> np.ndarray:
    """Confusion counts (tp, fp, fn, tn) of a file's test rows under one setting, then its threshold."""
    smoothed = trailing_mean_of_values(raw, smoothing, series_layout(frame))
    threshold = alarm_threshold(smoothed[:TRAIN_ROWS][complete], *rule)
    truth = frame["anomaly"].to_numpy()[TRAIN_ROWS:] if "anomaly" in frame else np.zeros(len(frame) - TRAIN_ROWS)
    c = confusion(truth, smoothed[TRAIN_ROWS:] > threshold)
    return np.array([c["tp"], c["fp"], c["fn"], c["tn"], threshold])


def all_counts(files: list[pd.DataFrame], seeds, trees: int) -> dict[tuple, np.ndarray]:
    """Counts and threshold by setting: array (seeds, files, 5), columns tp, fp, fn, tn, threshold."""
    table: dict[tuple, list] = {}
    for seed in seeds:
        for label, left_out in {**FEATURE_SETS, **SET_ASIDE}.items():
            per_file = [isolation_scores(frame, left_out, seed, trees) for frame in files]
            for smoothing in SMOOTHINGS:
                for name, rule in RULES.items():
                    row = [counts(f, raw, ok, smoothing, rule) for f, (raw, ok) in zip(files, per_file, strict=True)]
                    table.setdefault((label, smoothing, name), []).append(row)
    return {key: np.array(value) for key, value in table.items()}


# Protocol 2 with commissioning: the model learnt on anomaly-free.csv (either setting),
# the equipment's threshold floored at the model's or its commissioning readings' own.
COMMISSIONING = {
    f"{setting}, {threshold}": (pipeline, floor)
    for setting, pipeline in (
        ("réglage par défaut", "projet, réglage par défaut (quantile 99,5 %)"),
        ("réglage SKAB", "projet, réglage SKAB (seuil par la queue, choisi par LOFO)"),
    )
    for threshold, floor in (("seuil plancher", True), ("seuil de la mise en service", False))
}


def _commissioned(model: AnomalyModel, floor: bool):
    """A detector factory for ``fit_on_sensors``: the fitted ``model``, commissioned on the rows it is fitted on."""
    return lambda _seed: Commissioned(model, floor)


def commissioning_counts(free: pd.DataFrame, files: list[pd.DataFrame], seeds) -> dict[str, np.ndarray]:
    """Counts and threshold of each commissioning variant: array (seeds, files, 5), as ``all_counts``."""
    table: dict[str, list] = {}
    for seed in seeds:
        models = {name: fit_on_sensors(PIPELINES[name], seed, free) for name in {p for p, _ in COMMISSIONING.values()}}
        for label, (pipeline, floor) in COMMISSIONING.items():
            rows = []
            commissioned = _commissioned(models[pipeline], floor)
            for frame in files:
                detector = fit_on_sensors(commissioned, seed, frame.iloc[:TRAIN_ROWS])
                c = confusion(frame["anomaly"].to_numpy()[TRAIN_ROWS:], margins(detector, frame)[TRAIN_ROWS:] > 0)
                rows.append([c["tp"], c["fp"], c["fn"], c["tn"], detector.threshold_])
            table.setdefault(label, []).append(rows)
    return {key: np.array(value) for key, value in table.items()}


def injected(frame: pd.DataFrame, kind: str) -> pd.DataFrame:
    """A copy of an anomaly-free file with the fault ``kind`` of ``INJECTED`` in ``INJECTED_ROWS``, labelled."""
    faulty = frame.reset_index(drop=True)
    rows = slice(INJECTED_ROWS.start, min(INJECTED_ROWS.stop, len(faulty)) - 1)  # .loc includes its end
    columns, change = INJECTED[kind]
    faulty.loc[rows, columns] = change(faulty.loc[rows, columns].to_numpy())
    faulty["anomaly"] = 0.0
    faulty.loc[rows, "anomaly"] = 1.0
    return faulty


def print_injected(chunks: list[pd.DataFrame], seeds, trees: int, keys: list[tuple]) -> None:
    """Recall of each ``INJECTED`` fault in the anomaly-free files, for ``keys`` and the set-aside twins of the last."""
    kinds = list(INJECTED)
    table = all_counts([injected(chunk, kind) for kind in kinds for chunk in chunks], seeds, trees)
    keys = keys + [(label, *keys[-1][1:]) for label in SET_ASIDE]
    print(f"\nPannes injectées dans anomaly-free.csv découpé ({len(list(seeds))} graines) : rappel %, et FAR %.\n")
    print("| réglage | " + " | ".join(kinds) + " | FAR |\n|---|" + "---|" * (len(kinds) + 1))
    for key in keys:
        by_kind = table[key].reshape(table[key].shape[0], len(kinds), len(chunks), 5).sum(axis=2)  # seeds, kinds, 5
        recall = 100 * by_kind[:, :, 0].sum(axis=0) / np.maximum(by_kind[:, :, [0, 2]].sum(axis=(0, 2)), 1)
        far = 100 * by_kind[:, :, 1].sum() / max(by_kind[:, :, [1, 3]].sum(), 1)
        cells = " | ".join(f"{r:.0f}" for r in recall)
        print(f"| {', '.join(map(str, key))} | {cells} | {far:.1f} |")


def metrics(c: np.ndarray) -> tuple[float, float, float]:
    """F1, FAR % and MAR % of pooled counts (tp, fp, fn, tn)."""
    r = rates(dict(zip(("tp", "fp", "fn", "tn"), (int(v) for v in c[:4]), strict=True)))
    return r["f1"], r["far"], r["mar"]


def pooled(counts_: np.ndarray, files) -> np.ndarray:
    """Mean over seeds of (F1, FAR, MAR) pooled over ``files``."""
    return np.mean([metrics(per_seed[files].sum(axis=0)) for per_seed in counts_], axis=0)


def choose(table: dict[tuple, np.ndarray], files: list[int]) -> tuple:
    """The setting with the highest pooled F1 on ``files`` among those at most ``FAR_BUDGET`` % FAR there."""

    def merit(key):
        f1, far, _ = pooled(table[key], files)
        return f1 if far <= FAR_BUDGET else -far

    return max(table, key=merit)


def leave_one_file_out(table: dict[tuple, np.ndarray], n_files: int) -> tuple[np.ndarray, list]:
    """Per seed (F1, FAR, MAR) of held-out files, each scored with the setting chosen on the others."""
    chosen = [choose(table, [j for j in range(n_files) if j != i]) for i in range(n_files)]
    held_counts = np.stack([table[key][:, i] for i, key in enumerate(chosen)], axis=1)  # seeds, files, 5
    return np.array([metrics(per_seed.sum(axis=0)) for per_seed in held_counts]), chosen


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m common.skab_lofo", description=__doc__.splitlines()[0])
    parser.add_argument("data_dir", type=Path, help="dossier SKAB contenant valve1/ (et anomaly-free/)")
    parser.add_argument("--seeds", type=int, default=5, help="nombre de graines (défaut : 5)")
    parser.add_argument(
        "--trees",
        type=int,
        default=SKAB_SETTING["n_estimators"],
        help=f"arbres par forêt (défaut : {SKAB_SETTING['n_estimators']}, ceux du réglage SKAB)",
    )
    parser.add_argument(
        "--group",
        help=f"dossier de fichiers étiquetés sur lequel choisir (défaut : valve1 ; « {ALL_GROUPS} » : tous)",
    )
    args = parser.parse_args(argv)
    if args.seeds < 1 or args.trees < 1:
        print("Erreur : --seeds et --trees doivent valoir au moins 1", file=sys.stderr)
        return 2
    try:
        dataset = find_files(args.data_dir)
    except DataError as exc:
        print(f"Erreur : {exc}", file=sys.stderr)
        return 2
    groups = dataset.labelled
    group = args.group or ("valve1" if "valve1" in groups else next(iter(groups)))
    if group == ALL_GROUPS:
        files = [frame for folder in groups.values() for frame in folder]
    elif group in groups:
        files = groups[group]
    else:
        print(f"Erreur : pas de dossier « {group} » (dossiers : {', '.join(sorted(groups))})", file=sys.stderr)
        return 2
    if len(files) < 2:
        print(f"Erreur : « {group} » n'a qu'un fichier ; laisser un fichier de côté en demande deux", file=sys.stderr)
        return 2
    free = dataset.anomaly_free
    chunks = [] if free is None else [free.iloc[i : i + CHUNK_ROWS] for i in range(0, len(free) - 1000, CHUNK_ROWS)]
    table = all_counts([*files, *chunks], range(args.seeds), args.trees)
    n = len(files)
    candidates = {k: v[:, :n] for k, v in table.items() if k[0] in FEATURE_SETS}
    lofo, chosen = leave_one_file_out(candidates, n)
    print(
        f"{n} fichiers ({group}), {args.seeds} graines, forêts de {args.trees} arbres ; "
        f"choix : meilleur F1 sur les autres fichiers à FAR ≤ {FAR_BUDGET:g} %."
    )
    print("\n| réglage | F1 | FAR % | MAR % | FAR % anomaly-free |\n|---|---|---|---|---|")
    for key, c in sorted(table.items(), key=lambda kv: -pooled(kv[1], list(range(n)))[0]):
        f1, far, mar = pooled(c, list(range(n)))
        free_far = pooled(c, list(range(n, n + len(chunks))))[1] if chunks else float("nan")
        aside = " (hors choix)" if key[0] in SET_ASIDE else ""
        print(f"| {key[0]}, lissage {key[1]}, {key[2]}{aside} | {f1:.3f} | {far:.1f} | {mar:.1f} | {free_far:.1f} |")
    print(
        f"\nLOFO : F1 {lofo[:, 0].mean():.3f} ± {lofo[:, 0].std():.3f}, FAR {lofo[:, 1].mean():.1f} %, "
        f"MAR {lofo[:, 2].mean():.1f} % (moyenne ± écart-type sur les graines)."
    )
    final = choose(candidates, list(range(n)))
    print(f"Réglage choisi sur les {n} fichiers : {', '.join(map(str, final))}.")
    for key in (BEFORE, final):
        c = table[key]
        spread = c[:, :, 4].std(axis=0)  # per file, over seeds
        far = np.array([[100 * f[1] / max(f[1] + f[3], 1) for f in per_seed] for per_seed in c])  # seeds, files
        print(
            f"Seuil de « {', '.join(map(str, key))} » : écart-type entre graines {spread[:n].mean():.4f} ({group}), "
            f"{spread[n:].mean() if chunks else float('nan'):.4f} (anomaly-free), entre fichiers "
            f"{c[:, :n, 4].std(axis=1).mean():.4f} ; FAR par fichier de {group} : médiane {np.median(far[:, :n]):.1f} %, "
            f"maximum {far[:, :n].max():.1f} %, écart-type entre graines {far[:, :n].std(axis=0).mean():.1f} points."
        )
    print(
        "Réglages choisis (nombre de fichiers) : "
        + "; ".join(f"{', '.join(map(str, k))} ({c})" for k, c in Counter(chosen).most_common())
    )
    if chunks:
        print_injected(chunks, range(min(args.seeds, INJECTED_SEEDS)), args.trees, [BEFORE, final])
    if free is not None:
        commissioned = commissioning_counts(free, files, range(args.seeds))
        lofo, chosen = leave_one_file_out(commissioned, n)
        print("\nProtocole 2 avec mise en service (modèle appris sur anomaly-free.csv, étalonné sur les ")
        print(
            f"{TRAIN_ROWS} premières lignes de chaque fichier) :\n\n| variante | F1 | FAR % | MAR % |\n|---|---|---|---|"
        )
        for key, c in commissioned.items():
            f1, far, mar = pooled(c, list(range(n)))
            print(f"| {key} | {f1:.3f} | {far:.1f} | {mar:.1f} |")
        print(
            f"\nLOFO : F1 {lofo[:, 0].mean():.3f} ± {lofo[:, 0].std():.3f}, FAR {lofo[:, 1].mean():.1f} %, "
            f"MAR {lofo[:, 2].mean():.1f} %. Choix : "
            + "; ".join(f"{k} ({c})" for k, c in Counter(chosen).most_common())
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
