"""Tests of the pump-bench simulator: determinism, plausibility, fault signatures, CLI."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from common import simulator
from common.data import load_csv
from common.schema import SENSOR_NAMES, invalid_rows
from common.simulator import SCENARIOS, simulate

FAULTS = ("bearing_wear", "cavitation", "valve_closure", "overheating", "stuck_sensor")
COLUMNS = ["timestamp", "equipment_id", *SENSOR_NAMES, "anomaly", "changepoint", "fault"]


@pytest.fixture(scope="module")
def frames() -> dict[str, pd.DataFrame]:
    return {scenario: simulate(scenario, seed=3) for scenario in SCENARIOS}


def window(frame: pd.DataFrame) -> tuple[int, int]:
    """First and past-the-last row of the fault (or drift) window."""
    rows = np.flatnonzero(frame["fault"].to_numpy() != "")
    return int(rows[0]), int(rows[-1]) + 1


def test_same_seed_gives_identical_frames_and_another_seed_differs():
    for scenario in ("normal", "cavitation"):
        pd.testing.assert_frame_equal(simulate(scenario, seed=7), simulate(scenario, seed=7))
    a, b = simulate("normal", seed=1), simulate("normal", seed=2)
    assert not np.allclose(a[list(SENSOR_NAMES)], b[list(SENSOR_NAMES)])


@pytest.mark.parametrize("scenario", SCENARIOS[1:])
def test_fault_scenario_equals_normal_before_onset(frames, scenario):
    onset, _ = window(frames[scenario])
    assert onset >= len(frames[scenario]) // 2
    pd.testing.assert_frame_equal(
        frames[scenario].iloc[:onset].drop(columns="fault"),
        frames["normal"].iloc[:onset].drop(columns="fault"),
    )


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_every_scenario_is_plausible_and_well_labelled(frames, scenario):
    frame = frames[scenario]
    assert list(frame.columns) == COLUMNS
    assert len(frame) == 24 * 60
    assert invalid_rows(frame).empty
    assert frame[list(SENSOR_NAMES)].dtypes.eq("float64").all()
    steps = frame["timestamp"].diff().dropna()
    assert (steps == pd.Timedelta(seconds=60)).all()
    assert frame["equipment_id"].eq("pompe-01").all()
    for label in ("anomaly", "changepoint"):
        assert frame[label].dtype == "int8"
        assert set(frame[label].unique()) <= {0, 1}
    if scenario in FAULTS:
        onset, end = window(frame)
        assert frame["anomaly"].sum() == end - onset >= 20
        assert frame["anomaly"].iloc[onset:end].eq(1).all()
        expected = [onset] + ([end] if end < len(frame) else [])
        assert list(np.flatnonzero(frame["changepoint"])) == expected
        assert frame["fault"].iloc[onset:end].eq(scenario).all()
    else:
        assert frame["anomaly"].sum() == 0
        assert frame["changepoint"].sum() == 0


def test_normal_operation_has_skab_magnitudes_and_a_daily_cycle(frames):
    frame = frames["normal"]
    means = frame[list(SENSOR_NAMES)].mean()
    assert means["accelerometer1_rms"] == pytest.approx(0.027, rel=0.15)
    assert means["accelerometer2_rms"] == pytest.approx(0.040, rel=0.15)
    assert means["current"] == pytest.approx(1.2, rel=0.15)
    assert 0.05 < means["pressure"] < 0.4
    assert means["temperature"] == pytest.approx(70, abs=5)
    assert means["thermocouple"] == pytest.approx(25, abs=3)
    assert frame["voltage"].between(230 * 0.98, 230 * 1.02).all()
    assert means["volume_flow_rate_rms"] == pytest.approx(32, rel=0.1)
    hour = frame["timestamp"].dt.hour
    day, night = frame[hour.between(10, 18)], frame[(hour < 5) | (hour > 22)]
    assert day["thermocouple"].mean() > night["thermocouple"].mean() + 1
    assert day["current"].mean() > night["current"].mean()
    assert np.corrcoef(frame["current"], frame["volume_flow_rate_rms"])[0, 1] > 0.8


SEEDS = range(5)


def ratio(scenario: str, seed: int, column: str, part: str = "window") -> float:
    """Mean of ``column`` in the fault window (or its last quarter) over the same rows of "normal".

    Comparing with the same seed's normal run removes the load and daily changes.
    """
    fault, normal = simulate(scenario, seed=seed), simulate("normal", seed=seed)
    onset, end = window(fault)
    if part == "last":
        onset = end - max(5, (end - onset) // 4)
    return fault[column].iloc[onset:end].mean() / normal[column].iloc[onset:end].mean()


@pytest.mark.parametrize("seed", SEEDS)
def test_bearing_wear_raises_vibration_progressively(seed):
    assert ratio("bearing_wear", seed, "accelerometer1_rms") > 1.8
    assert ratio("bearing_wear", seed, "accelerometer1_rms", "last") > 2.8
    assert 1.1 < ratio("bearing_wear", seed, "accelerometer2_rms") < ratio("bearing_wear", seed, "accelerometer1_rms")
    assert 1.0 < ratio("bearing_wear", seed, "temperature", "last") < 1.06


@pytest.mark.parametrize("seed", SEEDS)
def test_cavitation_drops_flow_and_pressure_and_shakes_accelerometer2(seed):
    assert 0.68 < ratio("cavitation", seed, "volume_flow_rate_rms") < 0.88
    assert ratio("cavitation", seed, "pressure") < 0.75
    assert ratio("cavitation", seed, "accelerometer2_rms") > 1.5
    assert 0.9 < ratio("cavitation", seed, "current") < 1.0
    frame = simulate("cavitation", seed=seed)
    onset, end = window(frame)
    jumps = frame["pressure"].diff().abs()
    assert jumps.iloc[onset:end].mean() > 2 * jumps.iloc[onset - 100 : onset].mean()  # erratic


@pytest.mark.parametrize("seed", SEEDS)
def test_valve_closure_cuts_flow_and_raises_pressure(seed):
    frame = simulate("valve_closure", seed=seed)
    onset, end = window(frame)
    flow = frame["volume_flow_rate_rms"]
    assert flow.iloc[onset:end].mean() < 0.7 * flow.iloc[onset - 60 : onset].mean()
    assert flow.iloc[onset + 10 : end].max() < 0.7 * flow.iloc[onset - 60 : onset].min()  # closed within minutes
    assert ratio("valve_closure", seed, "pressure") > 1.8
    assert 0.8 < ratio("valve_closure", seed, "current") < 0.97


@pytest.mark.parametrize("seed", SEEDS)
def test_overheating_heats_the_motor_and_draws_more_current(seed):
    fault, normal = simulate("overheating", seed=seed), simulate("normal", seed=seed)
    onset, end = window(fault)
    rise = (fault["temperature"] - normal["temperature"]).iloc[end - 5 : end].mean()
    assert 10 <= rise <= 25
    assert 1.05 < ratio("overheating", seed, "current", "last") < 1.25


@pytest.mark.parametrize("seed", range(6))
def test_stuck_sensor_is_exactly_constant_in_its_window(seed):
    frame = simulate("stuck_sensor", seed=seed)
    onset, end = window(frame)
    stuck = [name for name in SENSOR_NAMES if frame[name].iloc[onset:end].nunique() == 1]
    assert stuck and stuck[0] in simulator.STUCK_CANDIDATES and len(stuck) == 1
    assert frame[stuck[0]].iloc[onset] == frame[stuck[0]].iloc[onset - 1]
    assert frame[stuck[0]].iloc[max(0, onset - 60) : onset].nunique() > 1


@pytest.mark.parametrize("seed", range(6))
def test_drift_is_an_offset_on_one_sensor_until_the_end(seed):
    drift, normal = simulate("drift", seed=seed), simulate("normal", seed=seed)
    onset, end = window(drift)
    assert end == len(drift)
    diff = drift[list(SENSOR_NAMES)].iloc[onset:] - normal[list(SENSOR_NAMES)].iloc[onset:]
    moved = [name for name in SENSOR_NAMES if diff[name].abs().max() > 0]
    assert len(moved) == 1 and moved[0] in simulator.DRIFT_OFFSETS
    low, high = simulator.DRIFT_OFFSETS[moved[0]]
    assert np.allclose(diff[moved[0]], diff[moved[0]].iloc[0]) and low <= diff[moved[0]].iloc[0] <= high


def test_options_change_length_period_start_and_equipment():
    frame = simulate("valve_closure", seed=0, hours=6, period_s=10, start="2026-03-01 12:00:00", equipment_id="p2")
    assert len(frame) == 6 * 360
    assert frame["timestamp"].iloc[0] == pd.Timestamp("2026-03-01 12:00:00")
    assert (frame["timestamp"].diff().dropna() == pd.Timedelta(seconds=10)).all()
    assert frame["equipment_id"].eq("p2").all() and invalid_rows(frame).empty


def test_bad_arguments_are_refused_in_french():
    with pytest.raises(ValueError, match="scénario inconnu"):
        simulate("explosion")
    with pytest.raises(ValueError, match="trop courte"):
        simulate("normal", hours=0.5)


def test_cli_writes_skab_files_that_round_trip(tmp_path, capsys):
    assert simulator.main(["--output", str(tmp_path), "--seed", "4", "--hours", "12"]) == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(f"{s}.csv" for s in SCENARIOS)
    out = capsys.readouterr().out
    assert out.count("lignes") == len(SCENARIOS) and "anomales" in out
    first_line = (tmp_path / "cavitation.csv").read_bytes().split(b"\r\n")[0]
    assert first_line.decode().startswith("datetime;Accelerometer1RMS;")
    for scenario in SCENARIOS:
        expected = simulate(scenario, seed=4, hours=12).drop(columns="fault")
        loaded = load_csv(tmp_path / f"{scenario}.csv")
        pd.testing.assert_frame_equal(loaded, expected, check_exact=True, check_dtype=False)
        assert loaded[list(SENSOR_NAMES)].equals(expected[list(SENSOR_NAMES)])
