"""The numpy scorer gives exactly scikit-learn's scores."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
from sklearn.ensemble import IsolationForest

from common.fast_forest import LEVELWISE_MAX_ROWS, FastForest, flatten


def rows(n: int, seed: int, nan_share: float = 0.02) -> np.ndarray:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 12)) * rng.choice([1.0, 3.0], size=(n, 1))  # inliers and far outliers
    x[rng.random(x.shape) < nan_share] = np.nan
    return x


@pytest.fixture(scope="module")
def forest():
    return IsolationForest(n_estimators=100, random_state=0).fit(rows(3000, 1, nan_share=0))


@pytest.mark.slow
def test_both_walks_identical_to_sklearn_on_a_million_rows_with_nan(forest):
    x = rows(1_000_000, 2)
    expected = forest.score_samples(x)
    fast = FastForest(forest)
    x32 = x.astype(np.float32)
    levelwise = np.concatenate([fast._levelwise_depths(x32[i : i + 4096]) for i in range(0, len(x32), 4096)])
    assert np.array_equal(-fast._scores(levelwise), expected)
    assert np.array_equal(-fast._scores(fast._tree_by_tree_depths(x32)), expected)
    assert np.array_equal(fast.score_samples(x), expected)


def test_identical_one_by_one_and_in_small_batches(forest):
    fast = FastForest(forest)
    x = rows(500, 3, nan_share=0.2)
    assert np.array_equal(fast.score_samples(x), forest.score_samples(x))
    for i in range(20):
        assert np.array_equal(fast.score_samples(x[i : i + 1]), forest.score_samples(x[i : i + 1]))


def test_identical_with_feature_subsampling():
    x = rows(2000, 4, nan_share=0)
    forest = IsolationForest(n_estimators=30, max_features=0.5, random_state=3).fit(x)
    y = rows(300, 5)
    fast = FastForest(forest)
    assert np.array_equal(-fast._scores(fast._levelwise_depths(y.astype(np.float32))), forest.score_samples(y))
    assert np.array_equal(fast.score_samples(y), forest.score_samples(y))


def test_thresholds_and_infinities_split_as_in_sklearn(forest):
    """Values exactly on a split threshold (as float32), just around it, and infinite."""
    thresholds = np.concatenate([e.tree_.threshold[e.tree_.children_left != -1] for e in forest.estimators_])
    on = thresholds.astype(np.float32)
    values = np.concatenate([on, np.nextafter(on, np.float32(np.inf)), np.nextafter(on, np.float32(-np.inf))])
    x = np.resize(values, (len(values) // 12 + 1) * 12).reshape(-1, 12)[:2000]
    x[::7, 3], x[::11, 5], x[::13] = np.inf, -np.inf, np.nan
    fast = FastForest(forest)
    assert np.array_equal(-fast._scores(fast._levelwise_depths(x.astype(np.float32))), forest.score_samples(x))
    assert np.array_equal(fast.score_samples(x), forest.score_samples(x))


def test_batch_size_picks_the_walk(forest, monkeypatch):
    fast = FastForest(forest)
    small, large = rows(LEVELWISE_MAX_ROWS, 6), rows(LEVELWISE_MAX_ROWS + 1, 7)
    monkeypatch.setattr(fast, "_tree_by_tree_depths", lambda x: pytest.fail("compiled walk used for a small batch"))
    assert np.array_equal(fast.score_samples(small), forest.score_samples(small))
    monkeypatch.undo()
    monkeypatch.setattr(fast, "_levelwise_depths", lambda x: pytest.fail("level-wise walk used for a large batch"))
    assert np.array_equal(fast.score_samples(large), forest.score_samples(large))


def test_wrong_number_of_features_is_refused(forest):
    with pytest.raises(ValueError, match="12 features"):
        FastForest(forest).score_samples(rows(3, 8)[:, :5])


def test_the_flat_arrays_alone_score_small_batches_and_ask_for_the_forest_for_large_ones(forest):
    asked = []

    def the_forest():
        asked.append(True)
        return forest

    arrays = pickle.loads(pickle.dumps(flatten(forest)))  # as stored in an artifact
    fast = FastForest.from_arrays(arrays, the_forest)
    x = rows(LEVELWISE_MAX_ROWS + 1, 9, nan_share=0.2)
    for i in range(0, LEVELWISE_MAX_ROWS, 37):
        assert np.array_equal(fast.score_samples(x[i : i + 37]), forest.score_samples(x[i : i + 37]))
    assert not asked
    assert np.array_equal(fast.score_samples(x), forest.score_samples(x))
    assert asked
