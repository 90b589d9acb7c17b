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

from dataclasses import dataclass

import numpy as np
import pandas as pd

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


@dataclass(frozen=True)
class SeriesLayout:
    """Where each equipment's series of readings lies in a frame.

    ``order`` lists the rows grouped by equipment, each group in time order (ties keep
    the frame's order); ``None`` when the rows already are in that order as one series,
    the usual case (one reading, a file of one pump), which then costs no reordering.
    ``position`` is the rank of each row of ``order`` in its own series; ``None`` when
    there is a single series (the rank is then the row number).
    """

    order: np.ndarray | None = None
    position: np.ndarray | None = None


def series_layout(frame: pd.DataFrame) -> SeriesLayout:
    """The per-equipment, time-ordered series of a frame's rows (see ``SeriesLayout``)."""
    if len(frame) < 2:
        return SeriesLayout()
    equipment = frame[EQUIPMENT_ID].to_numpy() if EQUIPMENT_ID in frame else None
    times = frame[TIMESTAMP].to_numpy() if TIMESTAMP in frame else None
    if equipment is None or (equipment == equipment[0]).all():
        if times is None or (times[1:] >= times[:-1]).all():
            return SeriesLayout()
        return SeriesLayout(np.lexsort((times,)))
    codes = pd.factorize(equipment)[0]
    order = np.lexsort((times, codes)) if times is not None else np.argsort(codes, kind="stable")
    grouped = codes[order]
    starts = np.flatnonzero(np.concatenate([[True], grouped[1:] != grouped[:-1]]))
    position = np.arange(len(frame)) - np.repeat(starts, np.diff(np.append(starts, len(frame))))
    return SeriesLayout(order, position)


def sensor_values(frame: pd.DataFrame) -> np.ndarray:
    """The sensor columns of a frame as a float64 array of shape (rows, 8), in ``SENSOR_NAMES`` order.

    Same values as ``frame[list(SENSOR_NAMES)].to_numpy(dtype="float64")``, which costs
    about 0.3 ms on a one-row frame: more than scoring the reading. Plain float64 columns
    are read straight from the frame's storage instead (``DataFrame._get_column_array``,
    stable from pandas 1 to 3); anything else takes the public path.
    """
    try:
        where = {name: i for i, name in enumerate(frame.columns)}
        columns = [frame._get_column_array(where[name]) for name in SENSOR_NAMES]
        if len(where) == frame.shape[1] and all(isinstance(c, np.ndarray) and c.dtype == np.float64 for c in columns):
            return np.column_stack(columns)
    except (AttributeError, KeyError, TypeError):
        pass
    return frame[list(SENSOR_NAMES)].to_numpy(dtype="float64")


# Windows are sums of ``window`` terms, term j being the value j - window + 1 rows back in
# the series. The sums add the terms in the order numpy's ``sum`` over a window axis does
# (sequentially; pairwise for a single column, numpy's contiguous reduction), so that the
# results stay those of the plain definition to the last bit (a test compares them).


def _sequential_sum(terms: list[np.ndarray]) -> np.ndarray:
    total = terms[0].copy()
    for term in terms[1:]:
        total += term
    return total


def _pairwise_sum(terms: list[np.ndarray]) -> np.ndarray:
    """numpy's pairwise summation (``pairwise_sum`` in its C loops), term by term."""
    n = len(terms)
    if n < 8:
        return _sequential_sum(terms)
    if n <= 128:
        partial = [t.copy() for t in terms[:8]]
        i = 8
        while i < n - n % 8:
            for j in range(8):
                partial[j] += terms[i + j]
            i += 8
        total = ((partial[0] + partial[1]) + (partial[2] + partial[3])) + (
            (partial[4] + partial[5]) + (partial[6] + partial[7])
        )
        return _sequential_sum([total, *terms[i:]])
    half = n // 2
    half -= half % 8
    return _pairwise_sum(terms[:half]) + _pairwise_sum(terms[half:])


def _trailing_stats(raw: np.ndarray, layout: SeriesLayout, window: int) -> tuple[np.ndarray, np.ndarray]:
    """Mean and standard deviation (ddof 1) of ``WINDOW_COLUMNS`` over each row's full trailing window.

    NaN where the window is not full: fewer than ``window`` readings so far in the
    series, or a NaN in any sensor of the window. Columns follow ``WINDOW_COLUMNS``.
    """
    n, k = len(raw), len(WINDOW_COLUMNS)
    mean, std = np.full((n, k), np.nan), np.full((n, k), np.nan)
    if n < window:
        return mean, std
    ordered = raw if layout.order is None else raw[layout.order]
    missing = np.concatenate([[0], np.cumsum(np.isnan(ordered).any(axis=1))])
    full = missing[window:] == missing[: n - window + 1]  # rows window-1 .. n-1 of the series order
    if layout.position is not None:
        full &= layout.position[window - 1 :] >= window - 1
    values = ordered[:, WINDOW_COLUMNS]
    terms = [values[j : n - window + 1 + j] for j in range(window)]
    tail_mean = _sequential_sum(terms) / window
    if window == 1:
        tail_std = np.zeros_like(tail_mean)
    else:
        squares, deviation = np.zeros_like(tail_mean), np.empty_like(tail_mean)
        for term in terms:  # sequentially, as above; in place, to stay in cache
            np.subtract(term, tail_mean, out=deviation)
            squares += np.multiply(deviation, deviation, out=deviation)
        tail_std = np.sqrt(squares / (window - 1))
    rows = np.flatnonzero(full) + window - 1
    rows = rows if layout.order is None else layout.order[rows]
    mean[rows], std[rows] = tail_mean[full], tail_std[full]
    return mean, std


def _trailing_mean(values: np.ndarray, layout: SeriesLayout, window: int) -> np.ndarray:
    """Mean of a (rows, k) array over each row's trailing window (the rows available; NaN counts as 0)."""
    n, k = values.shape
    filled = np.nan_to_num(values, nan=0.0)
    if n < 2:
        return filled + 0.0  # the sum of a lone value with the window's zero padding
    ordered = filled if layout.order is None else filled[layout.order]
    padded = np.concatenate([np.zeros((window - 1, k)), ordered])
    terms = [padded[j : j + n] for j in range(window)]
    position = np.arange(n) if layout.position is None else layout.position
    if layout.position is not None:  # a window does not reach back into the previous series
        for j in range(window - 1):
            terms[j] = np.where((position < window - 1 - j)[:, None], 0.0, terms[j])
    sums = _pairwise_sum(terms) if k == 1 else _sequential_sum(terms)
    valid = ~np.isnan(values if layout.order is None else values[layout.order])
    seen = np.concatenate([np.zeros((1, k), dtype=np.int64), np.cumsum(valid, axis=0)])
    counts = seen[1:] - seen[np.arange(n) - np.minimum(position, window - 1)]
    mean = sums / np.maximum(counts, 1)
    if layout.order is None:
        return mean
    out = np.empty_like(mean)
    out[layout.order] = mean
    return out


def trailing_mean(
    frame: pd.DataFrame, values: np.ndarray, window: int, layout: SeriesLayout | None = None
) -> np.ndarray:
    """Mean of ``values`` (one per row of ``frame``) over each row's trailing window.

    The window holds the last ``window`` readings of the row's equipment, in time
    order, ending with the row (fewer at the start of a series). Rows are the rows of
    ``frame``; the result has the shape of ``values``. ``layout`` (``series_layout(frame)``)
    saves working it out again when the caller already has it.
    """
    layout = series_layout(frame) if layout is None else layout
    return trailing_mean_of_values(values, window, layout)


def trailing_mean_of_values(values: np.ndarray, window: int, layout: SeriesLayout = SeriesLayout()) -> np.ndarray:
    """``trailing_mean`` of values laid out as ``layout`` says (one series in time order by default)."""
    values = np.asarray(values, dtype="float64")
    return _trailing_mean(values.reshape(len(values), -1), layout, window).reshape(values.shape)


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
    return np.hstack([physics(raw), window_features(*_trailing_stats(raw, layout, window))])


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
