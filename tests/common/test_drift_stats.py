"""Drift statistics: the reference CDF, PSI, and the fast KS test against scipy's kstest."""

from __future__ import annotations

import numpy as np
import pytest

from common import drift_stats
from common.schema import SENSOR_NAMES


@pytest.fixture(scope="module")
def reference(loaded_model) -> dict:
    return loaded_model.model.reference_


def test_reference_cdf_is_a_cdf_even_with_ties():
    q = [0.0] * 30 + list(np.linspace(0, 1, 71))
    cdf = drift_stats.reference_cdf(q)
    x = np.linspace(-1, 2, 301)
    y = cdf(x)
    assert y[0] == 0 and y[-1] == 1 and np.all(np.diff(y) >= 0)
    assert cdf(0.0) == pytest.approx(0.30)  # the tie is a jump


def test_psi_is_small_on_the_reference_itself_and_large_on_a_shift(reference):
    q = np.asarray(reference["inputs"]["pressure"])
    sample = np.interp(np.random.default_rng(0).random(5000), np.linspace(0, 1, 101), q)
    assert drift_stats.psi(sample, q) < 0.02
    assert drift_stats.psi(sample + 0.08, q) > 1.5  # stage 4's alert threshold
    assert np.isfinite(drift_stats.psi(np.full(100, 1e6), q))  # every reading in one outer bin: epsilon keeps it finite
    statistic, p_value = drift_stats.ks(sample, q)
    assert statistic < 0.03 and p_value > 0.01


def listcomp_cdf(percentiles):
    """The reference CDF as first written (one mask per distinct value): what ``reference_cdf`` must equal."""
    q = np.asarray(percentiles, dtype="float64")
    p = np.linspace(0.0, 1.0, len(q))
    values = np.unique(q)
    cum = np.array([p[q == v].max() for v in values])
    return lambda x: np.interp(x, values, cum, left=0.0, right=1.0)


def scipy_ks(observed, percentiles) -> tuple[float, float]:
    from scipy import stats

    result = stats.kstest(observed, listcomp_cdf(percentiles))
    return float(result.statistic), float(result.pvalue)


def windows_for_ks() -> dict[str, np.ndarray]:
    """Samples that take every branch of scipy's exact KS distribution: sizes 1 to 1,440, small and large gaps."""
    rng = np.random.default_rng(7)
    uniform = lambda n: rng.random(n)  # noqa: E731  (on the reference's scale: percentiles 0..1 below)
    return {
        "n=1": np.array([0.3]),
        "n=2": np.array([0.9, 0.1]),
        "n=5": uniform(5),
        "n=30": uniform(30),
        "n=100 shifted": uniform(100) * 0.9 + 0.1,
        "n=140": uniform(140),
        "n=500": uniform(500),
        "n=1440": uniform(1440),
        "n=1440 slightly shifted": uniform(1440) + 0.04,
        "n=1440 shifted": uniform(1440) + 0.3,
        "n=1440 normal": rng.normal(0.5, 0.15, 1440),
        "ties": np.round(uniform(1440), 1),
        "constant": np.full(1440, 0.5),
        "all above": np.full(700, 7.0),
        "all below": np.full(700, -7.0),
        "nan": np.array([0.2, np.nan, 0.5]),
        "empty": np.array([]),
    }


@pytest.mark.filterwarnings("ignore:One or more sample arguments is too small")  # scipy, on the empty sample
@pytest.mark.parametrize("percentiles", ["linear", "ties"])
def test_ks_gives_scipy_kstest_numbers(percentiles):
    """The numpy KS test against scipy's kstest (method auto) with the CDF as first written: same to 1e-12."""
    q = np.linspace(0, 1, 101) if percentiles == "linear" else np.concatenate([np.zeros(30), np.linspace(0, 1, 71)])
    for name, sample in windows_for_ks().items():
        expected = scipy_ks(sample, q)
        assert drift_stats.ks(sample, q) == pytest.approx(expected, rel=1e-12, abs=0, nan_ok=True), name


def test_reference_cdf_and_psi_bins_are_those_first_written(reference):
    q = [0.0] * 30 + list(np.linspace(0, 1, 71)) + [1.0] * 5 + [2.0] * 3  # ties at both ends, 109 points
    x = np.linspace(-1, 3, 4001)
    assert np.array_equal(drift_stats.reference_cdf(q)(x), listcomp_cdf(q)(x))
    for name in SENSOR_NAMES:
        q = np.asarray(reference["inputs"][name])
        inner, expected = drift_stats.psi_bins(q)
        first = np.diff(np.concatenate([[0.0], listcomp_cdf(q)(np.unique(q[10:100:10])), [1.0]]))
        assert np.array_equal(inner, np.unique(q[10:100:10])) and np.array_equal(expected, np.clip(first, 1e-4, None))
