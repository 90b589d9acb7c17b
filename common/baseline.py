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
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from common.features import series_layout, trailing_mean_of_values
from common.model import AnomalyModel, alarm_threshold

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
