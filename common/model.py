"""The anomaly model: an IsolationForest on engineered features, with its alarm threshold.

``score`` is higher for more abnormal readings: the isolation score of Liu et al.
(between 0 and 1, about 0.5 for an ordinary point) of each reading, averaged over
the last ``smoothing`` readings of the same equipment. A fault lasts; the rare
normal readings an IsolationForest also isolates quickly (noise) do not, so the
average separates them (the smoothing of decisions, done once, in the score).

The forest sees the features of ``common.features``, all but ``log_flow_mean``
unless ``flow_mean`` is set. That mean covers ``window`` readings: 10 s at 1 Hz
(SKAB), where it reveals small lasting flow losses; 10 min at one reading a minute
(the simulator, the default model), where it lags every change of load and, in our
measures, cost more false alarms than it found faults (docs/annexes/modele.md).

``predict`` raises an alarm when the score exceeds ``threshold_``, learnt from
the smoothed scores of the training rows only and stored with the model, by one
of two rules (``alarm_threshold``):

- by default, their ``alarm_quantile`` (99.5 %): measured, not guessed, when the
  training set is long (the simulator's 21,600 rows);
- with ``tail_rate`` set, the level their tail predicts to be exceeded by that
  share of normal readings. Above their 90 % quantile the scores decay about
  exponentially; the threshold extrapolates that decay to ``tail_rate``. A short
  training set (SKAB's 400 rows) cannot measure a rate below 1 in 400: its
  quantiles stop at its highest score, whose level depends on how many rows there
  were. The tail says what a rate of 1 in 1,000 means whatever their number.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd

from common.data import sensor_values
from common.fast_forest import FastForestHolder
from common.features import DEFAULT_WINDOW, feature_matrix, feature_names, features_of_values
from common.schema import SENSOR_NAMES
from common.windows import SeriesLayout, series_layout, trailing_mean, trailing_mean_of_values

REFERENCE_PERCENTILES = np.linspace(0, 100, 101)
DEFAULT_SMOOTHING = 10


TAIL_START = 0.9  # the tail rule fits the scores above this quantile of the training scores


def alarm_threshold(scores: np.ndarray, quantile: float = 0.995, tail_rate: float | None = None) -> float:
    """Alarm threshold from the smoothed scores of training rows (see the module docstring).

    Without ``tail_rate``: the ``quantile`` of the scores. With it: an exponential tail
    fitted above their 90 % quantile ``u`` (its scale is the mean excess over ``u``),
    extrapolated to the score exceeded by a share ``tail_rate`` of normal readings.

    >>> round(alarm_threshold(np.arange(1000.0), tail_rate=0.01), 1)  # 899.1 + 50.4 * ln(0.1 / 0.01)
    1015.2
    """
    if tail_rate is None:
        return float(np.quantile(scores, quantile))
    start = np.quantile(scores, TAIL_START)
    scale = float(np.mean(scores[scores > start] - start)) if (scores > start).any() else 0.0
    return float(start + scale * np.log((1 - TAIL_START) / tail_rate))


def reference_distribution(frame: pd.DataFrame, scores: np.ndarray, threshold: float) -> dict:
    """Percentiles of a frame's sensor values and of its smoothed ``scores``, and its alarm rate.

    What drift monitoring compares recent readings against: the training rows of a model, or
    the commissioning readings of an equipment (``common.baseline``).
    """
    raw = frame[list(SENSOR_NAMES)].to_numpy(dtype="float64")
    return {
        "rows": len(raw),
        "percentiles": REFERENCE_PERCENTILES.tolist(),
        "inputs": {
            name: np.percentile(raw[:, i], REFERENCE_PERCENTILES).tolist() for i, name in enumerate(SENSOR_NAMES)
        },
        "scores": np.percentile(scores, REFERENCE_PERCENTILES).tolist(),
        "alarm_rate": float(np.mean(scores > threshold)),
    }


class AnomalyModel(FastForestHolder):
    """IsolationForest pipeline: features of ``window`` readings, isolation scores, smoothing.

    Parameters are stored as given; ``fit`` learns ``forest_``, ``threshold_``,
    ``feature_names_``, ``training_rows_``, ``feature_medians_`` (the normal state that
    ``common.baseline`` aligns a new equipment to) and ``reference_`` (the distribution
    of the training inputs and scores, for drift monitoring). A model commissioned for
    one equipment (``common.baseline.commissioned``) also holds ``feature_offset_``, added
    to every feature before the forest reads it.

    How the forest is walked, pickled and loaded fast is ``FastForestHolder``'s business
    (``common.fast_forest``): the scores are scikit-learn's, to the last bit.
    """

    tail_rate: float | None = None  # what models saved before these parameters read
    flow_mean = False
    feature_offset_: tuple[float, ...] | None = None  # set by commissioning only

    def __init__(
        self,
        window: int = DEFAULT_WINDOW,
        n_estimators: int = 100,
        max_samples: int = 256,
        alarm_quantile: float = 0.995,
        random_state: int = 0,
        smoothing: int = DEFAULT_SMOOTHING,
        tail_rate: float | None = None,
        flow_mean: bool = False,
    ):
        self.window = window
        self.n_estimators = n_estimators
        self.max_samples = max_samples
        self.alarm_quantile = alarm_quantile
        self.random_state = random_state
        self.smoothing = smoothing
        self.tail_rate = tail_rate
        self.flow_mean = flow_mean

    def get_params(self) -> dict:
        params = {
            "window": self.window,
            "n_estimators": self.n_estimators,
            "max_samples": self.max_samples,
            "alarm_quantile": self.alarm_quantile,
            "random_state": self.random_state,
            "smoothing": self.smoothing,
        }
        # Added after models were registered: named only when set, so that a registered model's
        # metadata still matches what it says of itself (common.registry.load compares the two).
        if self.tail_rate is not None:
            params["tail_rate"] = self.tail_rate
        if self.flow_mean:
            params["flow_mean"] = self.flow_mean
        return params

    def features(self, frame: pd.DataFrame) -> np.ndarray:
        """Feature matrix of a sensor frame as the forest reads it (``_forest_inputs``)."""
        return self._forest_inputs(feature_matrix(frame, self.window))

    def _forest_inputs(self, x: np.ndarray) -> np.ndarray:
        """What the forest reads of ``x`` (every feature of ``feature_names``): the columns it was
        fitted on, by name, moved by ``feature_offset_`` if the model was commissioned.

        All columns with ``flow_mean``; without it, all but ``log_flow_mean``. A model saved
        before that feature existed has the same columns, so it keeps scoring the same.
        """
        fitted = self.__dict__.get("feature_names_")
        current = feature_names(self.window)
        if fitted is not None and fitted != current:
            x = x[:, [current.index(name) for name in fitted]]
        if self.feature_offset_ is not None:  # an equipment's normal state moved onto the training one
            x = x + np.asarray(self.feature_offset_)
        return x

    def fit(self, frame: pd.DataFrame) -> AnomalyModel:
        """Learn the forest and the alarm threshold from a sensor frame of normal operation.

        Rows whose trailing window is not yet full (the first readings of each
        equipment) are left out of training: their window statistics are unknown.
        Labels, if the frame has any, are ignored.
        """
        from sklearn.ensemble import IsolationForest  # only training needs it at import time

        self._forget_forest()  # and what a previous fit derived from it
        self.__dict__.pop("feature_offset_", None)
        self.feature_names_ = [
            name for name in feature_names(self.window) if self.flow_mean or not name.startswith("log_flow_mean")
        ]
        x = self.features(frame)
        complete = ~np.isnan(x).any(axis=1)
        if complete.sum() < 2:
            raise ValueError("not enough complete training rows")
        self.forest_ = IsolationForest(
            n_estimators=self.n_estimators,
            max_samples=min(self.max_samples, int(complete.sum())),
            random_state=self.random_state,
        ).fit(x[complete])
        scores = self.smooth(frame, self.score_features(x))[complete]
        self.threshold_ = alarm_threshold(scores, self.alarm_quantile, self.tail_rate)
        self.training_rows_ = int(complete.sum())
        self.feature_medians_ = np.median(x[complete], axis=0).tolist()  # the state commissioning aligns to
        self.reference_ = reference_distribution(frame[complete], scores, self.threshold_)
        return self

    def score_features(self, x: np.ndarray) -> np.ndarray:
        """Isolation score of each row of a feature matrix, before smoothing (higher = more abnormal)."""
        return -self._fast_forest().score_samples(x)

    def smooth(self, frame: pd.DataFrame, scores: np.ndarray) -> np.ndarray:
        """Mean of each row's isolation score over its equipment's last ``smoothing`` readings."""
        return trailing_mean(frame, scores, self.smoothing)

    def score(self, frame: pd.DataFrame) -> np.ndarray:
        """Anomaly score of every row of a sensor frame (higher = more abnormal)."""
        return self.score_values(sensor_values(frame), series_layout(frame))

    def score_values(self, values: np.ndarray, layout: SeriesLayout = SeriesLayout()) -> np.ndarray:
        """Anomaly score of each row of a (rows, 8) array of sensor values, columns in ``SENSOR_NAMES`` order.

        ``layout`` (``common.windows.SeriesLayout``) says how the rows form series; by default
        they are one equipment's readings in time order. ``score`` calls it with a frame's
        values and layout: one computation for frames and arrays.
        """
        x = self._forest_inputs(features_of_values(values, self.window, layout))
        return trailing_mean_of_values(self.score_features(x), self.smoothing, layout)

    def score_reading(self, reading: Mapping[str, float]) -> float:
        """Score of one validated reading (sensor names as keys) scored alone, with no frame to build.

        Same value, to the last bit, as ``score(frame_from_readings([reading]))[0]``.
        """
        return float(self.score_values(np.array([[reading[name] for name in SENSOR_NAMES]], dtype="float64"))[0])

    def predict(self, frame: pd.DataFrame) -> np.ndarray:
        """True where a row's score exceeds the alarm threshold."""
        return self.score(frame) > self.threshold_
