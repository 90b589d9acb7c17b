"""Tests of feature engineering: one function for batch and stream, per equipment, finite."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from common.data import frame_from_readings
from common.features import DEFAULT_WINDOW, PHYSICS, feature_names, make_features, trailing_mean
from common.schema import BY_NAME, EXAMPLE_READING, SENSOR_NAMES
from common.simulator import simulate


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
