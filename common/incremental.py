"""Score readings as they arrive, with the same scores as scoring the whole series at once.

A reading's score depends on the readings of its equipment just before it (trailing
feature windows, then the trailing mean of scores). A stream sends one reading at a
time and a batch job reads a large file chunk by chunk; both keep, per equipment,
the last readings they saw and score each new reading in that context. Since the
features and the smoothing are computed from exactly the same values in the same
order, the scores are identical to the last bit (tested).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Mapping
from typing import Any, NamedTuple

import numpy as np
import pandas as pd

from common.data import sensor_values
from common.model import AnomalyModel
from common.schema import EQUIPMENT_ID, SENSOR_NAMES, TIMESTAMP

DEFAULT_MAX_EQUIPMENTS = 10_000


class OutOfOrderError(ValueError):
    """A reading is not later than the last one already scored for its equipment."""


def out_of_order(equipment: str) -> OutOfOrderError:
    return OutOfOrderError(
        f"timestamp : les mesures de l'équipement {equipment} doivent arriver dans l'ordre chronologique, sans doublon"
    )


class _Tail(NamedTuple):
    """An equipment's last readings, oldest first: their timestamps and (rows, 8) sensor values."""

    times: np.ndarray
    values: np.ndarray

    def frame(self, equipment: str) -> pd.DataFrame:
        """These readings as a sensor frame (what scoring reads of a frame: sensors, equipment, time)."""
        frame = pd.DataFrame(self.values, columns=list(SENSOR_NAMES))
        frame.insert(0, EQUIPMENT_ID, equipment)
        frame.insert(0, TIMESTAMP, self.times)
        return frame


class IncrementalScorer:
    """Per-equipment history of recent readings, and scoring of new readings in that context.

    ``max_equipments`` bounds memory: the equipment unseen for the longest time is
    forgotten first (its next reading is scored as the start of a new series).
    Thread-safe: one lock around the history.

    The history is kept as arrays. A frame of one reading later than its equipment's last
    one (a stream message) is scored from them without any frame operation: the arrays are
    exactly the values the general path would put in a frame, one series in time order, so
    the score is the same to the last bit (tested against the general path).
    """

    def __init__(self, model: AnomalyModel, max_equipments: int = DEFAULT_MAX_EQUIPMENTS):
        self.model = model
        self.history = model.window + getattr(model, "smoothing", 1)
        self.max_equipments = max_equipments
        self._tails: OrderedDict[str, _Tail] = OrderedDict()
        self._lock = threading.Lock()

    def _check_order(self, frame: pd.DataFrame) -> None:
        for equipment, rows in frame.groupby(EQUIPMENT_ID, sort=False):
            times = rows[TIMESTAMP].to_numpy()
            tail = self._tails.get(equipment)
            previous = tail.times[-1:] if tail is not None else times[:0]
            series = np.concatenate([previous, times])
            if np.any(series[1:] <= series[:-1]):
                raise out_of_order(equipment)

    def score(self, frame: pd.DataFrame) -> np.ndarray:
        """Scores of ``frame``'s rows (in its order), each in the context of the readings before it.

        Raises OutOfOrderError, with nothing recorded, if a reading is not later than
        the previous one of its equipment.
        """
        with self._lock:
            if len(frame) == 1:  # left to the general path if out of order, to say so the same way
                scores = self._score_one(
                    frame[EQUIPMENT_ID].to_numpy()[0], frame[TIMESTAMP].to_numpy()[:1], sensor_values(frame)
                )
                if scores is not None:
                    return scores
            self._check_order(frame)
            equipments = pd.unique(frame[EQUIPMENT_ID])
            tails = [self._tails[e].frame(e) for e in equipments if e in self._tails]
            context = pd.concat([*tails, frame], ignore_index=True) if tails else frame.reset_index(drop=True)
            scores = self.model.score(context)[len(context) - len(frame) :]
            for equipment, rows in context.groupby(EQUIPMENT_ID, sort=False):
                rows = rows.iloc[-self.history :]
                self._remember(equipment, _Tail(rows[TIMESTAMP].to_numpy(), sensor_values(rows)))
        return scores

    def score_reading(self, reading: Mapping[str, Any]) -> float:
        """Score of one validated reading (sensor names, ``equipment_id``, ``timestamp`` as keys) after
        its equipment's previous ones, with no frame to build: a stream message.

        Same value, to the last bit, as ``score`` on the one-row frame of that reading. Raises
        OutOfOrderError, with nothing recorded, if it is not later than the equipment's last reading.
        """
        time = np.array([reading[TIMESTAMP]], dtype="datetime64[us]")
        values = np.array([[reading[name] for name in SENSOR_NAMES]], dtype="float64")
        with self._lock:
            scores = self._score_one(reading[EQUIPMENT_ID], time, values)
        if scores is None:
            raise out_of_order(reading[EQUIPMENT_ID])
        return float(scores[0])

    def _score_one(self, equipment: str, time: np.ndarray, values: np.ndarray) -> np.ndarray | None:
        """Scores of one reading later than its equipment's last reading; None otherwise (a reading
        out of order, or a time that does not compare)."""
        tail = self._tails.get(equipment)
        if tail is not None and not time[0] > tail.times[-1]:
            return None
        if tail is not None:
            times, values = np.concatenate([tail.times, time]), np.concatenate([tail.values, values])
        else:
            times = time
        scores = self.model.score_values(values)  # one series in time order: what model.score finds in its frame
        self._remember(equipment, _Tail(times[-self.history :], values[-self.history :]))
        return scores[-1:]

    def _remember(self, equipment: str, tail: _Tail) -> None:
        self._tails[equipment] = tail
        self._tails.move_to_end(equipment)
        while len(self._tails) > self.max_equipments:
            self._tails.popitem(last=False)

    def forget(self) -> None:
        """Drop every equipment's history (for example when the model changes)."""
        with self._lock:
            self._tails.clear()
