"""Tests of the anomaly model: threshold from training only, determinism, quality bar."""

from __future__ import annotations

import os
import pickle
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
from sklearn.ensemble import IsolationForest

from common.data import frame_from_readings
from common.evaluation import BAR, evaluate, passes_bar
from common.fast_forest import LEVELWISE_MAX_ROWS
from common.model import AnomalyModel, alarm_threshold
from common.schema import EXAMPLE_READING, SENSOR_NAMES
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


@pytest.mark.parametrize("window, smoothing", [(10, 10), (1, 1), (3, 5)])
def test_a_reading_scored_from_its_values_equals_the_frame_path_to_the_bit(training, window, smoothing):
    model = AnomalyModel(window=window, smoothing=smoothing, n_estimators=20).fit(training)
    series = simulate("cavitation", seed=54, hours=2)
    for _, row in series.head(30).iterrows():
        reading = {name: row[name] for name in SENSOR_NAMES}
        expected = model.score(frame_from_readings([reading]))[0]
        assert model.score_reading(reading) == expected
    values = series[list(SENSOR_NAMES)].to_numpy()
    assert np.array_equal(model.score_values(values), model.score(series))


def test_an_unpickled_model_scores_from_its_arrays_and_unpickles_the_forest_only_for_large_batches(model):
    copy = pickle.loads(pickle.dumps(model))
    assert "forest_" not in copy.__dict__ and "_fast" not in copy.__dict__
    small, large = simulate("bearing_wear", seed=55, hours=2), simulate("cavitation", seed=56, hours=12)
    assert len(small) <= LEVELWISE_MAX_ROWS < len(large)
    assert np.array_equal(copy.score(small), model.score(small))
    assert "forest_" not in copy.__dict__  # scored with the flat arrays alone
    assert np.array_equal(copy.score(large), model.score(large))
    assert "forest_" in copy.__dict__  # the compiled walk of scikit-learn's trees
    assert np.array_equal(
        copy.forest_.score_samples(model.features(small)), model.forest_.score_samples(model.features(small))
    )
    again = pickle.loads(pickle.dumps(copy))  # with its forest unpickled, a model pickles as before
    assert np.array_equal(again.score(large), model.score(large))


def test_warm_up_unpickles_the_forest_once_in_the_background(model):
    copy = pickle.loads(pickle.dumps(model))
    thread = copy.warm_up()
    assert thread is not None and thread.daemon
    assert copy.warm_up() is None  # already under way: no second thread
    thread.join(timeout=60)
    assert "forest_" in copy.__dict__ and "_forest_pickle" not in copy.__dict__
    assert copy.warm_up() is None  # nothing left to do
    large = simulate("cavitation", seed=56, hours=12)
    assert np.array_equal(copy.score(large), model.score(large))
    again = pickle.loads(pickle.dumps(copy))  # the warm-up flag is not part of the artifact
    assert "_warming" not in again.__dict__ and np.array_equal(again.score(large), model.score(large))


def test_refitting_an_unpickled_model_forgets_its_old_forest(model, training):
    copy = pickle.loads(pickle.dumps(model))
    copy.score(training.head(5))
    copy.random_state = 1
    copy.fit(training)
    assert "_forest_arrays" not in copy.__dict__ and "_forest_pickle" not in copy.__dict__
    assert np.array_equal(
        copy.score(training.head(300)), AnomalyModel(random_state=1).fit(training).score(training.head(300))
    )


def test_serving_a_pickled_model_does_not_import_scikit_learn(tmp_path, model):
    path = tmp_path / "model.pickle"
    path.write_bytes(pickle.dumps(model))
    code = (
        "import pickle, sys; from common.schema import EXAMPLE_READING; "
        f"m = pickle.loads(open({str(path)!r}, 'rb').read()); print(m.score_reading(EXAMPLE_READING)); "
        "print(sorted(name for name in sys.modules if name.split('.')[0] in ('sklearn', 'scipy')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env=os.environ)
    score, imported = out.stdout.splitlines()
    assert float(score) == model.score_reading(EXAMPLE_READING)
    assert imported == "[]"


def test_a_model_pickled_before_the_flat_arrays_still_scores_the_same(model, training):
    old = AnomalyModel.__new__(AnomalyModel)  # what unpickling an earlier artifact gives: forest_, no arrays
    old.__dict__.update({k: v for k, v in model.__dict__.items() if k != "_fast"})
    assert np.array_equal(old.score(training.head(1000)), model.score(training.head(1000)))
    assert np.array_equal(pickle.loads(pickle.dumps(old)).score(training.head(300)), model.score(training.head(300)))


def test_the_tail_rule_finds_the_quantile_of_an_exponential_tail():
    scores = 0.5 + np.random.default_rng(0).exponential(0.01, 200_000)
    for rate in (0.01, 0.001, 0.0001):
        assert alarm_threshold(scores, tail_rate=rate) == pytest.approx(np.quantile(scores, 1 - rate), abs=0.002)
    assert alarm_threshold(scores) == np.quantile(scores, 0.995)  # without a rate: the quantile rule


def test_with_a_tail_rate_the_threshold_comes_from_the_training_scores_tail(training):
    model = AnomalyModel(tail_rate=0.001).fit(training)
    complete = ~np.isnan(model.features(training)).any(axis=1)
    scores = model.score(training)[complete]
    assert model.threshold_ == alarm_threshold(scores, tail_rate=0.001)
    assert model.threshold_ > np.quantile(scores, 0.99)
    assert AnomalyModel(tail_rate=0.01).fit(training).threshold_ < model.threshold_
    assert model.get_params()["tail_rate"] == 0.001


def test_the_flow_mean_is_a_feature_only_of_models_that_ask_for_it(model, training):
    assert not any(name.startswith("log_flow_mean") for name in model.feature_names_)
    with_mean = AnomalyModel(flow_mean=True).fit(training)
    assert with_mean.feature_names_ == [*model.feature_names_[:5], "log_flow_mean10", *model.feature_names_[5:]]
    assert len(with_mean.feature_medians_) == 8 and with_mean.get_params()["flow_mean"] is True
    frame = simulate("valve_closure", seed=58, hours=2)
    assert with_mean.features(frame).shape == (len(frame), 8) and model.features(frame).shape == (len(frame), 7)


def test_a_model_saved_before_the_flow_mean_feature_scores_on_its_own_columns(training):
    current = AnomalyModel(n_estimators=20, flow_mean=True).fit(training)
    without = [i for i, name in enumerate(current.feature_names_) if not name.startswith("log_flow_mean")]
    old = AnomalyModel(n_estimators=20)  # as unpickled from an artifact of the previous version
    x = current.features(training)[:, without]
    old.forest_ = IsolationForest(n_estimators=20, random_state=0).fit(x[~np.isnan(x).any(axis=1)])
    old.feature_names_ = [current.feature_names_[i] for i in without]
    old.threshold_ = 0.6
    del old.__dict__["tail_rate"], old.__dict__["flow_mean"]
    frame = simulate("valve_closure", seed=57, hours=2)
    expected = -old.forest_.score_samples(current.features(frame)[:, without])
    assert np.array_equal(old.score(frame), old.smooth(frame, expected))
    assert old.tail_rate is None and old.flow_mean is False and old.predict(frame).dtype == bool
