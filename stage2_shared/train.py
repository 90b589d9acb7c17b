"""Train the anomaly model and register it as a new version: the notebook's logic as a script.

    python -m stage2_shared.train --version 1.1.0 [--data mes_mesures.csv]

Without ``--data`` the model learns from simulated normal operation of the pump
bench. With ``--data`` (SKAB-format files or folders), rows labelled as anomalies,
if the files have labels, are left out: the model learns what normal looks like.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pandas as pd

from common.data import DataError, load_csv
from common.evaluation import evaluate
from common.model import AnomalyModel
from common.registry import RegistryError, parse_version, save
from common.simulator import simulate

from .settings import get_settings

TRAINING_SEEDS = range(5)  # evaluation uses other seeds (common.evaluation)
TRAINING_HOURS = 72.0


def simulated_training_data(seeds=TRAINING_SEEDS, hours: float = TRAINING_HOURS) -> pd.DataFrame:
    """Normal operation of several simulated pumps, one equipment id per seed."""
    return pd.concat(
        [simulate("normal", seed=s, hours=hours, equipment_id=f"pompe-{s + 1:02d}") for s in seeds],
        ignore_index=True,
    )


def file_training_data(paths: list[str]) -> pd.DataFrame:
    """Rows of normal operation from SKAB-format files (a folder means every CSV in it)."""
    files = [f for p in map(Path, paths) for f in (sorted(p.glob("*.csv")) if p.is_dir() else [p])]
    if not files:
        raise DataError("aucun fichier CSV trouvé dans les chemins donnés")
    frames = []
    for f in files:
        frame = load_csv(f, equipment_id=f.stem)
        if "anomaly" in frame:
            frame = frame[frame["anomaly"] == 0]
        frames.append(frame)
    return pd.concat(frames, ignore_index=True)


def train(version: str, data: list[str] | None = None, models_dir=None) -> Path:
    """Fit, evaluate on held-out simulated data and register; returns the version folder."""
    parse_version(version)
    training = file_training_data(data) if data else simulated_training_data()
    model = AnomalyModel().fit(training)
    metrics = evaluate(model)
    return save(model, version, training, metrics=metrics, path=models_dir)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog=f"python -m {__package__}.train", description="Entraîne et enregistre un modèle."
    )
    parser.add_argument("--version", required=True, help="numéro de version à créer, par exemple 1.0.0")
    parser.add_argument("--data", nargs="*", help="fichiers ou dossiers CSV au format SKAB (défaut : données simulées)")
    args = parser.parse_args(argv)
    try:
        folder = train(args.version, args.data, get_settings().models_dir)
    except (RegistryError, DataError) as exc:
        print(f"Erreur : {exc}", file=sys.stderr)
        return 2
    print(f"Modèle {args.version} enregistré dans {folder}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
