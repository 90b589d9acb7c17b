"""Tests of commissioning: a model learnt on one pump watches another after calibrating on its first readings."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from common.baseline import COMMISSIONING_READINGS, Baseline, commission, score_with_baseline
from common.model import AnomalyModel
from common.simulator import simulate
from stage1_local.train import simulated_training_data

# Another pump, at another operating point: twice the flow and current, three times the vibrations.
SCALE = {"volume_flow_rate_rms": 2.0, "current": 2.0, "accelerometer1_rms": 3.0, "accelerometer2_rms": 3.0}


def bigger_pump(scenario: str, seed: int) -> pd.DataFrame:
    frame = simulate(scenario, seed=seed, hours=24, equipment_id="grande-pompe")
    for name, factor in SCALE.items():
        frame[name] = frame[name] * factor
    return frame


@pytest.fixture(scope="module")
def model() -> AnomalyModel:
    return AnomalyModel().fit(simulated_training_data(seeds=range(2), hours=24))


# 400 readings a minute apart miss most of the simulator's daily cycle of load: the model's
# threshold is kept as a floor (``floor=True``), as the docs advise for short recordings.


def test_without_commissioning_another_pump_is_all_alarms_and_with_it_normal_again(model):
    frame = bigger_pump("normal", seed=80)
    later = slice(COMMISSIONING_READINGS, None)
    assert model.predict(frame)[later].mean() > 0.9
    baseline = commission(model, frame, floor=True)
    assert baseline.readings == COMMISSIONING_READINGS - model.window + 1
    alarms = score_with_baseline(model, baseline, frame)[later] > baseline.threshold
    assert alarms.mean() < 0.02
    assert baseline.threshold >= model.threshold_


def test_a_commissioned_pump_still_raises_alarms_on_its_faults(model):
    frame = bigger_pump("valve_closure", seed=81)
    assert not frame["anomaly"].iloc[:COMMISSIONING_READINGS].any()  # commissioning saw normal operation
    baseline = commission(model, frame, floor=True)
    alarms = score_with_baseline(model, baseline, frame) > baseline.threshold
    faulty = frame["anomaly"].to_numpy() == 1
    assert alarms[faulty].mean() > 0.9 and alarms[~faulty][COMMISSIONING_READINGS:].mean() < 0.15


def test_a_baseline_is_a_few_numbers_that_survive_json(model):
    baseline = commission(model, bigger_pump("normal", seed=82))
    assert len(baseline.offset) == len(model.feature_names_)
    assert Baseline.from_dict(baseline.to_dict()) == baseline


def test_commissioning_refuses_too_few_readings(model):
    with pytest.raises(ValueError):
        commission(model, bigger_pump("normal", seed=83), readings=model.window)
    assert np.isfinite(commission(model, bigger_pump("normal", seed=83), readings=60).threshold)


def test_without_the_floor_the_threshold_is_the_commissioning_readings_own(model):
    frame = bigger_pump("normal", seed=84)
    own = commission(model, frame)
    floored = commission(model, frame, floor=True)
    assert own.offset == floored.offset
    assert floored.threshold == max(own.threshold, model.threshold_)
    first = frame.iloc[:COMMISSIONING_READINGS]
    scores = score_with_baseline(model, own, first)[model.window - 1 :]
    assert own.threshold == pytest.approx(np.quantile(scores, model.alarm_quantile))
