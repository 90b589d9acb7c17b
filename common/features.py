"""Feature engineering: pure functions, sensor frame in, feature frame out.

No model code here. The same function serves training, batch scoring and the
scoring of one reading: a reading is described by its own values and by the
trailing window of readings of the same equipment that end with it. Scoring a
reading alone, or with its history, or inside a whole file gives the same
features for it as long as the same preceding readings are present: windows are
computed from exactly the same values in the same order (no running sums), so the
results are identical to the last bit.

The features are the physics of a centrifugal pump rather than the raw values.
Flow, current and pressure all follow the load the pump is asked for, so a raw
value says little; ratios between sensors that one load drives together cancel it:

- ``log_flow``: the pump's output itself (log). A closing valve or a cavitating
  pump delivers less; at a fixed operating point it is the cleanest signal.
- ``flow_per_current`` (log): litres pumped per ampere. Less water for the same
  electrical power is a hydraulic fault, whatever the load.
- ``pressure_per_flow`` (bar per L/min): the hydraulic resistance the pump sees.
  It rises when a valve closes downstream, falls when the pump cavitates.
- ``vibration_ratio`` (log): accelerometer 1 over accelerometer 2. A worn bearing
  shakes the bearing side first, cavitation the pump side.
- ``vibration_level`` (log): geometric mean of the two vibrations.

Then, for the channels that can freeze without the physics above noticing, the
log of the window's standard deviation: a frozen sensor has none. It needs a full
window and is NaN before (an IsolationForest sends NaN down the majority branch:
unknown, not suspicious). The flow meter is left out: it is quantised (SKAB steps
by 1/3 L/min), so a steady flow often repeats the same value without being stuck.

The motor temperature is deliberately absent: it follows the load through a
thermal lag of tens of minutes, so its level depends on a history far longer than
any window, and a model trained on a few minutes (SKAB's protocol) raises false
alarms as the motor slowly warms or cools (see docs/modele.md).

Every division has a denominator bounded away from 0 by a physical epsilon
(flow can be 0 L/min, current 0 A), so no feature is ever infinite.

>>> from common.schema import EXAMPLE_READING
>>> from common.data import frame_from_readings
>>> make_features(frame_from_readings([EXAMPLE_READING]), window=3).shape
(1, 7)
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from numpy.lib.stride_tricks import sliding_window_view

from common.schema import EQUIPMENT_ID, SENSOR_NAMES, TIMESTAMP

DEFAULT_WINDOW = 10

# Physical epsilons: well below a normal reading, well above the float noise.
FLOW_EPS = 1.0  # L/min
CURRENT_EPS = 0.1  # A
VIBRATION_EPS = 1e-3  # g
# Channels whose freezing the features watch, with the smallest standard deviation
# worth telling apart from zero (well below the finest noise seen on SKAB).
STUCK_EPS = {"pressure": 1e-4, "thermocouple": 1e-4}

PHYSICS = ("log_flow", "flow_per_current", "pressure_per_flow", "vibration_ratio", "vibration_level")
_COLUMN = {name: i for i, name in enumerate(SENSOR_NAMES)}


def feature_names(window: int = DEFAULT_WINDOW) -> list[str]:
    """Names of the columns ``make_features`` returns, in order."""
    return [*PHYSICS, *(f"{name}_logstd{window}" for name in STUCK_EPS)]


def _trailing_stats(values: np.ndarray, window: int) -> tuple[np.ndarray, np.ndarray]:
    """Trailing mean and standard deviation over ``window`` rows of a (n, k) array.

    The mean uses the rows available (a first reading is its own mean). The standard
    deviation needs a full window and is NaN before: a model then treats it as unknown
    rather than as a suspiciously steady signal.
    """
    n, k = values.shape
    padded = np.concatenate([np.full((window - 1, k), np.nan), values])
    windows = sliding_window_view(padded, window, axis=0)  # (n, k, window)
    counts = np.sum(~np.isnan(windows), axis=2)
    sums = np.sum(np.nan_to_num(windows, nan=0.0), axis=2)
    mean = sums / np.maximum(counts, 1)
    full = counts.min(axis=1) == window
    std = np.full((n, k), np.nan)
    std[full] = np.std(windows[full], axis=2, ddof=1) if window > 1 else 0.0
    return mean, std


def physics(values: np.ndarray) -> np.ndarray:
    """Load-normalised quantities (columns of ``PHYSICS``) of a (n, 8) array of sensor values.

    Columns of ``values`` follow ``SENSOR_NAMES``. Finite for every value the schema accepts.
    """

    def col(name: str) -> np.ndarray:
        return values[:, _COLUMN[name]]

    flow = np.maximum(col("volume_flow_rate_rms"), 0.0) + FLOW_EPS
    current = np.maximum(col("current"), 0.0) + CURRENT_EPS
    vib1 = np.maximum(col("accelerometer1_rms"), 0.0) + VIBRATION_EPS
    vib2 = np.maximum(col("accelerometer2_rms"), 0.0) + VIBRATION_EPS
    return np.column_stack(
        [
            np.log(flow),
            np.log(flow / current),
            col("pressure") / flow,
            np.log(vib1 / vib2),
            0.5 * (np.log(vib1) + np.log(vib2)),
        ]
    )


def _stuck(std: np.ndarray) -> np.ndarray:
    """Log standard deviation of the watched channels (NaN where the window is not full)."""
    columns = [std[:, _COLUMN[name]] + eps for name, eps in STUCK_EPS.items()]
    return np.log(np.column_stack(columns))


def _series(frame: pd.DataFrame) -> list[np.ndarray]:
    """Row positions of each equipment's readings, in time order."""
    equipment = frame[EQUIPMENT_ID].to_numpy() if EQUIPMENT_ID in frame else np.zeros(len(frame))
    order = np.lexsort((frame[TIMESTAMP].to_numpy(),)) if TIMESTAMP in frame else np.arange(len(frame))
    return [order[equipment[order] == eq] for eq in pd.unique(equipment)]


def trailing_mean(frame: pd.DataFrame, values: np.ndarray, window: int) -> np.ndarray:
    """Mean of ``values`` (one per row of ``frame``) over each row's trailing window.

    The window holds the last ``window`` readings of the row's equipment, in time
    order, ending with the row (fewer at the start of a series). Rows are the rows of
    ``frame``; the result has the shape of ``values``.
    """
    values = np.asarray(values, dtype="float64")
    flat = values.reshape(len(values), -1)
    out = np.empty_like(flat)
    for rows in _series(frame):
        out[rows] = _trailing_stats(flat[rows], window)[0]
    return out.reshape(values.shape)


def make_features(frame: pd.DataFrame, window: int = DEFAULT_WINDOW) -> pd.DataFrame:
    """Physics features of each reading and trailing-window features of its equipment.

    Takes a frame with ``equipment_id``, ``timestamp`` and the eight sensor columns
    (any order of rows). Returns a frame with the same index and the columns of
    ``feature_names(window)``: the physics quantities of the reading, then the log
    standard deviation of the channels that can freeze over the last ``window``
    readings of the same equipment, ordered by time, ending with the current one
    (NaN until the window is full).
    """
    if window < 1:
        raise ValueError("window must be >= 1")
    raw = frame[list(SENSOR_NAMES)].to_numpy(dtype="float64")
    std = np.empty_like(raw)
    for rows in _series(frame):
        std[rows] = _trailing_stats(raw[rows], window)[1]
    return pd.DataFrame(np.hstack([physics(raw), _stuck(std)]), index=frame.index, columns=feature_names(window))
