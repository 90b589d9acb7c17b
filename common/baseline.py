"""Commissioning: calibrate a new equipment's baseline from its first readings.

A model learnt on one pump, or on one operating point, flags every reading of a
pump running elsewhere (SKAB's ``anomaly-free.csv`` was recorded at 125 L/min, its
labelled files at 32 L/min: protocol 2 of ``common.skab`` is all alarms). Real
plants commission a new pump by recording its normal behaviour first. Here that
recording calibrates two things, stored as a ``Baseline``:

- ``offset``: per feature, the median over the training rows minus the median over
  the equipment's commissioning readings. Added to the equipment's features, it
  moves its normal state onto the one the model learnt. Most features are logs or
  ratios, so a shift is a change of scale of the raw sensors (vibrations 6 times
  higher, flow 4 times) that keeps the physics between them.
- ``threshold``: the model's own threshold rule applied to the smoothed scores of
  the commissioning readings once shifted. On SKAB this beat flooring it at the
  model's threshold (chosen by leave-one-file-out, docs/annexes/modele.md). ``floor=True``
  keeps the model's threshold when it is higher: for a recording shorter than the
  equipment's cycles of load (400 readings of the simulator, one a minute, miss
  most of its daily cycle), which would otherwise set the threshold too low.

No label is read: commissioning only assumes its readings were normal.

    baseline = commission(model, first_readings)
    scores = score_with_baseline(model, baseline, frame)   # alarm where > baseline.threshold

The services use it as a model version of its own (``commissioned``): the same forest,
the offset in its feature step, the equipment's threshold, and the commissioning
readings as drift reference. Stage 3 serves it by ``MODEL_VERSION``, stage 4 deploys it
as any version. Command line (French output)::

    python -m common.baseline --modele 1.0.0 --version 1.0.0-p101 --equipement P-101 premieres_lectures.csv
        [--lectures 400] [--seuil-propre] [--models-dir DIR]
"""

from __future__ import annotations

import argparse
import copy
import sys
from dataclasses import dataclass
from os import PathLike
from pathlib import Path

import numpy as np
import pandas as pd

from common.data import DataError, load_csv
from common.model import AnomalyModel, alarm_threshold, reference_distribution
from common.registry import RegistryError, fingerprint, load, models_dir, parse_version, read_metadata, save
from common.schema import EQUIPMENT_ID, SENSOR_NAMES, TIMESTAMP
from common.windows import series_layout, trailing_mean_of_values

COMMISSIONING_READINGS = 400  # 400 s at 1 Hz, SKAB's training rows; 400 min at one reading a minute


@dataclass(frozen=True)
class Baseline:
    """What commissioning stores for one equipment (a few numbers, JSON-friendly)."""

    readings: int
    offset: tuple[float, ...]
    threshold: float

    def to_dict(self) -> dict:
        return {"readings": self.readings, "offset": list(self.offset), "threshold": self.threshold}

    @classmethod
    def from_dict(cls, data: dict) -> Baseline:
        return cls(int(data["readings"]), tuple(float(v) for v in data["offset"]), float(data["threshold"]))


def _shifted_scores(model: AnomalyModel, frame: pd.DataFrame, offset: np.ndarray) -> np.ndarray:
    layout = series_layout(frame)
    x = model.features(frame) + offset
    return trailing_mean_of_values(model.score_features(x), model.smoothing, layout)


def commission(
    model: AnomalyModel, frame: pd.DataFrame, readings: int = COMMISSIONING_READINGS, floor: bool = False
) -> Baseline:
    """Baseline of one equipment from its first ``readings`` readings (rows of ``frame`` in time order).

    ``model`` must be fitted and hold ``feature_medians_`` (models fitted by this version do).
    ``floor``: the threshold is never below the model's (see the module docstring); by
    default, the threshold is the commissioning readings' own.
    Raises ValueError if fewer than ``model.window`` + 1 complete readings are given.
    """
    first = frame.iloc[:readings]
    x = model.features(first)
    complete = ~np.isnan(x).any(axis=1)
    if complete.sum() <= model.window:
        raise ValueError("not enough commissioning readings")
    offset = np.asarray(model.feature_medians_) - np.median(x[complete], axis=0)
    scores = _shifted_scores(model, first, offset)[complete]
    threshold = alarm_threshold(scores, model.alarm_quantile, model.tail_rate)
    if floor:
        threshold = max(threshold, model.threshold_)
    return Baseline(int(complete.sum()), tuple(float(v) for v in offset), threshold)


def score_with_baseline(model: AnomalyModel, baseline: Baseline, frame: pd.DataFrame) -> np.ndarray:
    """Scores of an equipment's readings, its features moved by its baseline's offset."""
    return _shifted_scores(model, frame, np.asarray(baseline.offset))


def commissioned(
    model: AnomalyModel, frame: pd.DataFrame, readings: int = COMMISSIONING_READINGS, floor: bool = False
) -> tuple[AnomalyModel, Baseline]:
    """A copy of ``model`` commissioned on ``frame``'s first ``readings`` readings, and its baseline.

    The copy shares the forest; it adds the baseline's offset to its features (``feature_offset_``),
    so that its ``score`` is ``score_with_baseline``'s, and its ``threshold_`` is the baseline's.
    Its ``reference_`` (drift monitoring) describes the commissioning readings: the equipment's
    own normal state. Raises ValueError as ``commission`` does, or if ``model`` is already
    commissioned (commission the model it comes from instead).
    """
    if model.feature_offset_ is not None:
        raise ValueError("model already commissioned")
    baseline = commission(model, frame, readings, floor)
    fitted = copy.copy(model)
    fitted.feature_offset_ = baseline.offset
    fitted.threshold_ = baseline.threshold
    first = frame.iloc[:readings]
    complete = ~np.isnan(fitted.features(first)).any(axis=1)
    fitted.reference_ = reference_distribution(first[complete], fitted.score(first)[complete], fitted.threshold_)
    return fitted, baseline


class Commissioned:
    """A detector for ``common.skab``: a model fitted once, commissioned per file on its first rows."""

    def __init__(self, model: AnomalyModel, floor: bool = False):
        self.model = model
        self.floor = floor

    def fit(self, frame: pd.DataFrame) -> Commissioned:
        self.baseline_ = commission(self.model, frame, floor=self.floor)
        self.threshold_ = self.baseline_.threshold
        return self

    def score(self, frame: pd.DataFrame) -> np.ndarray:
        return score_with_baseline(self.model, self.baseline_, frame)


def commission_version(
    parent: str,
    version: str,
    equipment: str,
    source: str | PathLike,
    readings: int = COMMISSIONING_READINGS,
    floor: bool = True,
    path=None,
) -> Path:
    """Register ``version``: version ``parent`` commissioned on ``equipment``'s first readings in ``source``.

    ``source``: a SKAB-format CSV (``common.data.load_csv``); with an ``equipment_id`` column,
    only ``equipment``'s rows are read. ``floor`` is on by default here: a service's model
    watches for months what a few hundred readings showed (see the module docstring).
    Returns the new version's folder. Raises
    RegistryError or DataError (French) and writes nothing if the version is malformed or
    exists, ``parent`` is unknown or already commissioned, the file is unusable or holds
    fewer than ``readings`` readings of the equipment.
    """
    parse_version(version)
    if (models_dir(path) / version).exists():
        raise RegistryError(
            f"la version {version} existe déjà : une version n'est jamais écrasée, choisissez-en une autre"
        )
    loaded = load(parent, path)
    if "commissioning" in loaded.metadata:
        origin = loaded.metadata["commissioning"]
        raise RegistryError(
            f"la version {parent} est déjà mise en service pour {origin['equipment']} : "
            f"partez de la version d'origine, {origin['from_version']}"
        )
    minimum = 2 * loaded.model.window  # more complete readings than the window (``commission``)
    if readings < minimum:
        raise DataError(
            f"--lectures : au moins {minimum} relevés (deux fois la fenêtre du modèle), {readings} demandés"
        )
    frame = load_csv(source, equipment_id=equipment)
    frame = frame.loc[frame[EQUIPMENT_ID] == equipment, [TIMESTAMP, EQUIPMENT_ID, *SENSOR_NAMES]]  # no label read
    if len(frame) < readings:
        raise DataError(
            f"{equipment} : {len(frame)} relevé(s) dans le fichier, il en faut {readings} pour la mise en service"
        )
    first = frame.iloc[:readings].reset_index(drop=True)
    try:
        model, baseline = commissioned(loaded.model, first, readings, floor)
    except ValueError:
        raise DataError(
            f"{equipment} : trop peu de relevés complets ({minimum} au moins) parmi les {readings} premiers"
        ) from None
    return save(
        model,
        version,
        loaded.metadata["training_data"],  # the forest's: commissioning does not retrain it
        path=path,
        commissioning={
            "from_version": parent,
            "equipment": equipment,
            "readings": baseline.readings,
            "floor": floor,
            "data": {
                "fingerprint": fingerprint(first),
                "rows": len(first),
                "first": first[TIMESTAMP].iloc[0].isoformat(),
                "last": first[TIMESTAMP].iloc[-1].isoformat(),
            },
        },
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m common.baseline",
        description="Met en service un équipement : une nouvelle version du modèle, étalonnée sur ses premiers relevés.",
    )
    parser.add_argument("fichier", help="premiers relevés de l'équipement, CSV au format SKAB (séparateur « ; »)")
    parser.add_argument("--modele", required=True, help="version du modèle à mettre en service, par exemple 1.0.0")
    parser.add_argument("--version", required=True, help="version à créer, par exemple 1.0.0-p101")
    parser.add_argument("--equipement", required=True, help="identifiant de l'équipement, par exemple P-101")
    parser.add_argument(
        "--lectures",
        type=int,
        default=COMMISSIONING_READINGS,
        help=f"relevés utilisés (défaut : {COMMISSIONING_READINGS})",
    )
    parser.add_argument(
        "--seuil-propre",
        action="store_true",
        help="seuil des seuls relevés de mise en service, même sous celui du modèle (par défaut, le seuil du modèle "
        "sert de plancher) : pour un enregistrement qui couvre tous les régimes de l'équipement",
    )
    parser.add_argument("--models-dir", default=None, help="dossier du registre (défaut : $MODELS_DIR ou models/)")
    args = parser.parse_args(argv)
    try:
        folder = commission_version(
            args.modele,
            args.version,
            args.equipement,
            args.fichier,
            args.lectures,
            not args.seuil_propre,
            args.models_dir,
        )
    except (RegistryError, DataError) as exc:
        print(f"Erreur : {exc}", file=sys.stderr)
        return 2
    except FileNotFoundError:
        print(f"Erreur : fichier {args.fichier} introuvable", file=sys.stderr)
        return 2
    except OSError:  # a folder, no permission...
        print(f"Erreur : fichier {args.fichier} illisible", file=sys.stderr)
        return 2
    meta, parent = read_metadata(args.version, args.models_dir), read_metadata(args.modele, args.models_dir)
    print(
        f"Version {args.version} enregistrée dans {folder} : modèle {args.modele} mis en service pour "
        f"{args.equipement} sur {meta['commissioning']['readings']} relevés complets, "
        f"seuil {meta['threshold']:.4f} (modèle {args.modele} : {parent['threshold']:.4f}).\n"
        f"Étape 3 : MODEL_VERSION={args.version} ; étape 4 : POST /admin/models/{args.version}/deploy."
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
