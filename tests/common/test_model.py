"""Tests of the anomaly model: threshold from training only, determinism, quality bar."""

from __future__ import annotations

import pickle

import numpy as np
import pandas as pd
import pytest

from common.evaluation import BAR, evaluate, passes_bar
from common.model import AnomalyModel
from common.schema import SENSOR_NAMES
from common.simulator import simulate
from stage1_local.train import simulated_training_data


@pytest.fixture(scope="module")
def training() -> pd.DataFrame:
    return simulated_training_data(seeds=range(2), hours=24)


@pytest.fixture(scope="module")
def model(training) -> AnomalyModel:
    return AnomalyModel().fit(training)


def test_threshold_is_the_chosen_quantile_of_training_scores(model, training):
    x = model.features(training)
    complete = ~np.isnan(x).any(axis=1)
    assert model.threshold_ == pytest.approx(np.quantile(model.score(training)[complete], model.alarm_quantile))
    assert model.reference_["alarm_rate"] == pytest.approx(1 - model.alarm_quantile, abs=0.002)


def test_scoring_other_data_does_not_move_the_threshold(model):
    before = model.threshold_
    faulty = simulate("valve_closure", seed=50, hours=12)
    assert model.predict(faulty).any()
    model.score(faulty)
    assert model.threshold_ == before


def test_threshold_depends_on_training_data(training):
    other = simulated_training_data(seeds=range(10, 12), hours=24)
    assert AnomalyModel().fit(training).threshold_ != AnomalyModel().fit(other).threshold_


def test_same_data_and_seed_give_identical_scores_and_another_seed_differs(model, training):
    frame = simulate("cavitation", seed=51, hours=6)
    again = AnomalyModel().fit(training)
    assert np.array_equal(model.score(frame), again.score(frame))
    assert again.threshold_ == model.threshold_
    assert not np.array_equal(model.score(frame), AnomalyModel(random_state=1).fit(training).score(frame))


def test_score_is_the_smoothed_isolation_score_of_the_forest(model):
    frame = simulate("normal", seed=52, hours=3)
    raw = -model.forest_.score_samples(model.features(frame))
    np.testing.assert_array_equal(model.score(frame), model.smooth(frame, raw))
    assert np.array_equal(AnomalyModel(smoothing=1).fit(frame).smooth(frame, raw), raw)


def test_reference_keeps_percentiles_of_raw_sensor_values(model, training):
    inputs = model.reference_["inputs"]
    assert set(inputs) == set(SENSOR_NAMES)
    assert all(len(v) == 101 for v in inputs.values())
    assert inputs["current"][0] >= training["current"].min()
    assert inputs["current"][-1] <= training["current"].max()


def test_a_lone_reading_gets_a_finite_score(model):
    frame = simulate("normal", seed=53, hours=2).iloc[[0]]
    assert np.isfinite(model.score(frame)).all()


@pytest.mark.slow
def test_default_pipeline_passes_the_bar_on_held_out_simulated_data():
    model = AnomalyModel().fit(simulated_training_data(hours=24))
    results = evaluate(model, seeds=range(1000, 1006))
    assert passes_bar(results), (results["all_faults"], results["normal"], BAR)


def test_scores_are_the_forests_own_and_the_cache_is_not_pickled(training_frame):
    model = AnomalyModel(n_estimators=20).fit(training_frame)
    x = model.features(training_frame.head(300))
    assert np.array_equal(model.score_features(x), -model.forest_.score_samples(x))
    assert "_fast" in model.__dict__ and "_fast" not in pickle.loads(pickle.dumps(model)).__dict__
