"""The numpy scorer gives exactly scikit-learn's scores."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.ensemble import IsolationForest

from common.fast_forest import SKLEARN_MIN_ROWS, FastForest


def rows(n: int, seed: int, nan_share: float = 0.02) -> np.ndarray:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 12)) * rng.choice([1.0, 3.0], size=(n, 1))  # inliers and far outliers
    x[rng.random(x.shape) < nan_share] = np.nan
    return x


@pytest.fixture(scope="module")
def forest():
    return IsolationForest(n_estimators=100, random_state=0).fit(rows(3000, 1, nan_share=0))


@pytest.mark.slow
def test_identical_to_sklearn_on_a_million_rows_with_nan(forest):
    x = rows(1_000_000, 2)
    fast = FastForest(forest)
    assert np.array_equal(-fast._scores(x.astype(np.float32)), forest.score_samples(x))


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
    assert np.array_equal(FastForest(forest).score_samples(y), forest.score_samples(y))


def test_large_batches_go_to_sklearn(forest, monkeypatch):
    fast = FastForest(forest)
    monkeypatch.setattr(fast, "_scores", lambda x: pytest.fail("fast path used for a large batch"))
    x = rows(SKLEARN_MIN_ROWS, 6)
    assert np.array_equal(fast.score_samples(x), forest.score_samples(x))
