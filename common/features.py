"""Feature engineering: pure functions, sensor frame in, feature frame out.

No model code here. The same function serves training, batch scoring and the
scoring of one reading: a reading is described by its own values and by the
trailing window of readings of the same equipment that end with it. Scoring a
reading alone, or with its history, or inside a whole file gives the same
features for it as long as the same preceding readings are present: windows are
computed from exactly the same values in the same order (no running sums), so the
results are identical to the last bit (``common.windows`` does that arithmetic).

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

Then ``log_flow_mean``: the log of the mean flow over the trailing window. The flow
meter is quantised (SKAB steps by 1/3 L/min) and noisy (about 0.4 L/min around
32 L/min); a partly closed valve that costs 0.3 to 1 L/min hides in that noise
reading by reading and shows in the mean of ten. ``log_flow`` stays beside it for
sudden changes, which the mean would delay. The window counts readings, not
seconds: a model uses this feature only if it asks for it (``AnomalyModel``'s
``flow_mean``, chosen for SKAB's 1 Hz by leave-one-file-out, docs/annexes/modele.md).

Then, for the channels that can freeze without the physics above noticing, the
log of the window's standard deviation: a frozen sensor has none. It needs a full
window and is NaN before (an IsolationForest sends NaN down the majority branch:
unknown, not suspicious). The flow meter is left out: it is quantised (SKAB steps
by 1/3 L/min), so a steady flow often repeats the same value without being stuck.

The motor temperature is deliberately absent: it follows the load through a
thermal lag of tens of minutes, so its level depends on a history far longer than
any window, and a model trained on a few minutes (SKAB's protocol) raises false
alarms as the motor slowly warms or cools (see docs/annexes/modele.md).

Every division has a denominator bounded away from 0 by a physical epsilon
(flow can be 0 L/min, current 0 A), so no feature is ever infinite.

>>> from common.schema import EXAMPLE_READING
>>> from common.data import frame_from_readings
>>> make_features(frame_from_readings([EXAMPLE_READING]), window=3).shape
(1, 8)
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from common.data import sensor_values
from common.schema import SENSOR_NAMES
from common.windows import SeriesLayout, series_layout, trailing_stats

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
# Channels the trailing window summarises: those watched for freezing (their spread),
# then the flow (its mean).
WINDOW_COLUMNS = [*(_COLUMN[name] for name in STUCK_EPS), _COLUMN["volume_flow_rate_rms"]]


def feature_names(window: int = DEFAULT_WINDOW) -> list[str]:
    """Names of the columns ``make_features`` returns, in order."""
    return [*PHYSICS, f"log_flow_mean{window}", *(f"{name}_logstd{window}" for name in STUCK_EPS)]


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


def window_features(mean: np.ndarray, std: np.ndarray) -> np.ndarray:
    """Trailing-window features from the window's mean and std of ``WINDOW_COLUMNS``.

    The log of the mean flow, then the log standard deviation of each channel of ``STUCK_EPS``.
    """
    flow = np.log(np.maximum(mean[:, -1:], 0.0) + FLOW_EPS)
    return np.hstack([flow, np.log(std[:, : len(STUCK_EPS)] + np.array(list(STUCK_EPS.values())))])


def features_of_values(
    raw: np.ndarray, window: int = DEFAULT_WINDOW, layout: SeriesLayout = SeriesLayout()
) -> np.ndarray:
    """The feature matrix of a (rows, 8) array of sensor values laid out as ``layout`` says.

    The one feature computation: ``feature_matrix`` extracts the values and the layout of a
    frame and calls it. Without a layout, the rows are one series in time order, the case of
    a live reading scored alone (``raw`` of shape (1, 8)), which then needs no frame at all.
    """
    if window < 1:
        raise ValueError("window must be >= 1")
    return np.hstack([physics(raw), window_features(*trailing_stats(raw, WINDOW_COLUMNS, layout, window))])


def feature_matrix(frame: pd.DataFrame, window: int = DEFAULT_WINDOW, layout: SeriesLayout | None = None) -> np.ndarray:
    """``make_features(frame, window)`` as a bare float64 array (no DataFrame to build)."""
    layout = series_layout(frame) if layout is None else layout
    return features_of_values(sensor_values(frame), window, layout)


def make_features(frame: pd.DataFrame, window: int = DEFAULT_WINDOW) -> pd.DataFrame:
    """Physics features of each reading and trailing-window features of its equipment.

    Takes a frame with ``equipment_id``, ``timestamp`` and the eight sensor columns
    (any order of rows). Returns a frame with the same index and the columns of
    ``feature_names(window)``: the physics quantities of the reading, then the log of
    the mean flow and the log standard deviation of the channels that can freeze over the last ``window``
    readings of the same equipment, ordered by time, ending with the current one
    (NaN until the window is full).
    """
    return pd.DataFrame(feature_matrix(frame, window), index=frame.index, columns=feature_names(window))
