"""Reaction to drift: a candidate version fitted on recent readings judged normal, compared, never deployed.

The rows: the last audited readings judged ``Normal``, minus what maintenance contradicted (a confirmed
alarm; an equipment's day before a missed fault). Deploying it stays a person's decision.
"""

from __future__ import annotations

import argparse
import json
import sys
from contextlib import closing
from datetime import timedelta

import pandas as pd

from common.data import DataError
from common.decision import NORMAL
from common.evaluation import evaluate
from common.model import AnomalyModel
from common.registry import RegistryError, parse_version, save
from common.schema import EQUIPMENT_ID, SENSOR_NAMES, TIMESTAMP
from common.simulator import SCENARIO_LABELS

from . import deployment, state
from .settings import get_settings

DEFAULT_ROWS = 20_000
MIN_ROWS = 2_000  # below this, a few hours of one pump: not enough to learn what normal looks like
MISSED_MARGIN = timedelta(hours=24)  # a fault found late was probably brewing for a while before


def normal_readings(db_path, rows: int = DEFAULT_ROWS) -> pd.DataFrame:
    """The last ``rows`` audited readings judged normal and not contradicted by feedback, as a sensor frame."""
    with closing(state.connect(db_path)) as conn:
        found = conn.execute(
            "SELECT request_id, equipment_id, inputs, at FROM audit WHERE kind = 'prediction' AND decision = ? "
            "AND request_id NOT IN (SELECT request_id FROM feedback WHERE verdict = 'confirmed' "
            "AND request_id IS NOT NULL) ORDER BY seq DESC LIMIT ?",
            (NORMAL, rows),
        ).fetchall()
        missed = conn.execute("SELECT equipment_id, fault_at FROM feedback WHERE verdict = 'missed'").fetchall()
    records = []
    for row in reversed(found):
        inputs = json.loads(row["inputs"])
        records.append({**inputs, TIMESTAMP: inputs.get(TIMESTAMP) or row["at"], EQUIPMENT_ID: row["equipment_id"]})
    frame = pd.DataFrame(records, columns=[TIMESTAMP, EQUIPMENT_ID, *SENSOR_NAMES])
    frame[TIMESTAMP] = pd.to_datetime(frame[TIMESTAMP], format="ISO8601", utc=True).dt.tz_localize(None)
    for equipment, fault_at in missed:
        end = pd.Timestamp(fault_at).tz_convert("UTC").tz_localize(None)
        window = (frame[EQUIPMENT_ID] == equipment) & frame[TIMESTAMP].between(end - MISSED_MARGIN, end)
        frame = frame[~window]
    frame = frame.drop_duplicates([EQUIPMENT_ID, TIMESTAMP], keep="last")
    return frame.sort_values([EQUIPMENT_ID, TIMESTAMP], kind="stable").reset_index(drop=True)


def comparison(current: dict, candidate: dict, current_version: str, version: str) -> str:
    """A French table: F1 per fault and false alarm rates, current version against the candidate."""
    lines = [f"| scénario | {current_version} (servie) | {version} (candidate) |", "|---|---|---|"]
    for name in current:
        label = "toutes pannes" if name == "all_faults" else SCENARIO_LABELS.get(name, name)
        if name in ("normal", "drift"):
            lines.append(
                f"| {label} : fausses alarmes | {current[name]['far']:.2f} % | {candidate[name]['far']:.2f} % |"
            )
        else:
            lines.append(f"| {label} : F1 | {current[name]['f1']:.3f} | {candidate[name]['f1']:.3f} |")
    return "\n".join(lines)


def retrain(version: str, db_path=None, rows: int = DEFAULT_ROWS, models_dir=None) -> tuple[str, str]:
    """Fit, evaluate and register a candidate; returns (served version, French comparison). Never deploys."""
    parse_version(version)
    frame = normal_readings(db_path, rows)
    if len(frame) < MIN_ROWS:
        raise DataError(
            f"{len(frame)} mesures normales seulement dans le journal d'audit ({MIN_ROWS} au moins) : "
            "attendez plus de trafic ou entraînez sur des fichiers (make train)"
        )
    current = deployment.load_served(db_path, models_dir)
    candidate = AnomalyModel().fit(frame)
    metrics = evaluate(candidate)
    save(candidate, version, frame, metrics=metrics, path=models_dir)
    text = comparison(evaluate(current.model), metrics, current.version, version)
    return (
        current.version,
        f"{len(frame)} mesures d'entraînement ({frame[EQUIPMENT_ID].nunique()} équipement(s)).\n{text}",
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m stage4_prod.retrain",
        description="Construit une version candidate à partir des mesures récentes jugées normales, sans la déployer.",
    )
    parser.add_argument("--version", required=True, help="numéro de la version candidate, par exemple 1.1.0")
    args = parser.parse_args(argv)
    try:
        served, text = retrain(args.version, models_dir=get_settings().models_dir)
    except (RegistryError, DataError, state.AuditUnavailable, ValueError) as exc:
        print(f"Erreur : {exc}", file=sys.stderr)
        return 2
    print(f"Version candidate {args.version} enregistrée (non déployée ; servie : {served}).\n{text}")
    print(
        f"\nPour la servir, si la comparaison le justifie : POST /admin/models/{args.version}/deploy avec une clé admin ;"
        " pour revenir en arrière : POST /admin/rollback."
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
