"""Tests of feature engineering: one function for batch and stream, per equipment, finite."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from common.data import frame_from_readings
from common.features import (
    DEFAULT_WINDOW,
    FLOW_EPS,
    PHYSICS,
    STUCK_EPS,
    feature_names,
    make_features,
)
from common.schema import BY_NAME, EXAMPLE_READING, SENSOR_NAMES
from common.simulator import simulate
from common.windows import trailing_mean


@pytest.fixture(scope="module")
def series() -> pd.DataFrame:
    return simulate("stuck_sensor", seed=4, hours=6)


def test_columns_follow_feature_names_and_index_is_kept(series):
    shuffled = series.sample(frac=1.0, random_state=0)
    features = make_features(shuffled)
    assert list(features.columns) == feature_names(DEFAULT_WINDOW)
    assert features.index.equals(shuffled.index)


def test_whole_file_and_reading_by_reading_are_bit_identical(series):
    whole = make_features(series).to_numpy()
    for i in range(len(series)):
        history = series.iloc[max(0, i - DEFAULT_WINDOW + 1) : i + 1]
        alone = make_features(history).to_numpy()[-1]
        assert np.array_equal(alone, whole[i], equal_nan=True), f"row {i}"


def test_equipments_are_independent_when_interleaved():
    a = simulate("normal", seed=1, hours=3, equipment_id="pompe-a")
    b = simulate("cavitation", seed=2, hours=3, equipment_id="pompe-b")
    mixed = pd.concat([a, b]).sort_values("timestamp", kind="stable").reset_index(drop=True)
    features = make_features(mixed)
    for part in (a, b):
        rows = (mixed["equipment_id"] == part["equipment_id"].iloc[0]).to_numpy()
        assert np.array_equal(features[rows].to_numpy(), make_features(part).to_numpy(), equal_nan=True)


def test_rows_are_ordered_by_time_not_by_position(series):
    reversed_rows = series.iloc[::-1]
    pd.testing.assert_frame_equal(make_features(reversed_rows).loc[series.index], make_features(series))


def test_a_lone_reading_has_finite_physics_and_unknown_window_statistics():
    features = make_features(frame_from_readings([EXAMPLE_READING]))
    assert np.isfinite(features[list(PHYSICS)].to_numpy()).all()
    assert features.drop(columns=list(PHYSICS)).isna().all(axis=None)


def test_extreme_readings_within_the_schema_give_finite_features():
    lows = {name: BY_NAME[name].low for name in SENSOR_NAMES}
    highs = {name: BY_NAME[name].high for name in SENSOR_NAMES}
    frame = frame_from_readings([lows, highs, lows] * 5)
    frame["timestamp"] = pd.date_range("2026-01-01", periods=len(frame), freq="1s")
    features = make_features(frame).to_numpy()
    assert np.isfinite(features[:, : len(PHYSICS)]).all()
    assert np.isfinite(features[DEFAULT_WINDOW - 1 :]).all()


def test_a_frozen_sensor_has_the_lowest_spread_feature(series):
    features = make_features(series)
    frozen = series["fault"].to_numpy() == "stuck_sensor"
    name = next(s for s in SENSOR_NAMES if series.loc[frozen, s].nunique() == 1)
    column = f"{name}_logstd{DEFAULT_WINDOW}"
    if column not in features:
        pytest.skip(f"{name} is not watched for freezing")
    inside = features[column].to_numpy()[frozen][DEFAULT_WINDOW:]
    assert inside.max() < np.nanmin(features[column].to_numpy()[~frozen])


def test_trailing_mean_uses_the_available_readings_of_each_equipment():
    frame = pd.DataFrame(
        {
            "timestamp": pd.to_datetime(["2026-01-01 00:00:0" + str(i) for i in range(5)]),
            "equipment_id": ["a", "b", "a", "b", "a"],
        }
    )
    np.testing.assert_allclose(trailing_mean(frame, np.array([1.0, 10.0, 3.0, 20.0, 5.0]), 2), [1, 10, 2, 15, 4])


def test_window_must_be_positive(series):
    with pytest.raises(ValueError):
        make_features(series, window=0)


def _plain_trailing(values: np.ndarray, window: int) -> tuple[np.ndarray, np.ndarray]:
    """The definition, written plainly: mean and std of each row's trailing window, from numpy's own sum and std."""
    n, k = values.shape
    windows = np.lib.stride_tricks.sliding_window_view(
        np.concatenate([np.full((window - 1, k), np.nan), values]), window, axis=0
    )
    counts = np.sum(~np.isnan(windows), axis=2)
    mean = np.sum(np.where(np.isnan(windows), 0.0, windows), axis=2) / np.maximum(counts, 1)
    full = counts.min(axis=1) == window
    std = np.full((n, k), np.nan)
    std[full] = np.std(windows[full], axis=2, ddof=1) if window > 1 else 0.0
    return mean, std


def _plain_series(frame: pd.DataFrame) -> list[np.ndarray]:
    order = np.lexsort((frame["timestamp"].to_numpy(),))
    equipment = frame["equipment_id"].to_numpy()
    return [order[equipment[order] == e] for e in pd.unique(equipment)]


def _messy_frame(n: int, seed: int) -> pd.DataFrame:
    """Interleaved equipments, shuffled rows, repeated timestamps, NaN and infinite values."""
    rng = np.random.default_rng(seed)
    values = rng.normal(5, 2, size=(n, len(SENSOR_NAMES))) * 10.0 ** rng.integers(-3, 3, size=(n, len(SENSOR_NAMES)))
    values[rng.random(values.shape) < 0.02] = np.nan
    values[rng.random(values.shape) < 0.005] = np.inf
    frame = pd.DataFrame(values, columns=list(SENSOR_NAMES))
    frame.insert(0, "equipment_id", [f"p{i}" for i in rng.integers(0, 3, n)])
    frame.insert(0, "timestamp", pd.date_range("2026-01-01", periods=n, freq="1s")[rng.integers(0, n // 2 + 1, n)])
    return frame.sample(frac=1.0, random_state=seed)


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
@pytest.mark.parametrize("window", [1, 2, 7, 8, 10, 17])
@pytest.mark.parametrize("n", [1, 2, 9, 400])
def test_fast_windows_equal_the_plain_definition_to_the_bit(window, n):
    """The fast paths (no per-equipment loop, sums term by term) give numpy's own results exactly."""
    frame = _messy_frame(n, seed=window * 1000 + n)
    raw = frame[list(SENSOR_NAMES)].to_numpy(dtype="float64")
    scores = np.random.default_rng(n).random((n, 1))
    std, raw_mean, mean, mean3 = np.empty_like(raw), np.empty_like(raw), np.empty_like(scores), np.empty((n, 3))
    several = np.random.default_rng(window).random((n, 3))
    gaps = np.where(np.isnan(raw).any(axis=1), np.nan, 0.0)[:, None]  # a reading with any NaN sensor
    full = np.empty(n, dtype=bool)  # the window features need a full window without such a reading
    for rows in _plain_series(frame):
        raw_mean[rows], std[rows] = _plain_trailing(raw[rows], window)
        mean[rows] = _plain_trailing(scores[rows], window)[0]
        mean3[rows] = _plain_trailing(several[rows], window)[0]
        full[rows] = ~np.isnan(_plain_trailing(gaps[rows], window)[1][:, 0])
    flow = np.where(full, raw_mean[:, SENSOR_NAMES.index("volume_flow_rate_rms")], np.nan)
    flow_mean = np.log(np.maximum(flow, 0.0) + FLOW_EPS)
    stuck = np.log(np.column_stack([std[:, SENSOR_NAMES.index(name)] + eps for name, eps in STUCK_EPS.items()]))
    features = make_features(frame, window).to_numpy()
    assert np.array_equal(features[:, len(PHYSICS)], flow_mean, equal_nan=True)
    assert np.array_equal(features[:, len(PHYSICS) + 1 :], stuck, equal_nan=True)
    assert np.array_equal(trailing_mean(frame, scores[:, 0], window), mean[:, 0])
    assert np.array_equal(trailing_mean(frame, several, window), mean3)
