"""PSI and Kolmogorov-Smirnov of recent values against a model's reference percentiles.

The reference (101 percentiles of each raw training input) is saved with the model in the
registry; stage 4's drift monitoring compares its window of readings with it.
``ks_rows`` is the fast path of ``scipy.stats.kstest``: the same numbers for eight sensors
in one call (tests/common/test_drift_stats.py checks them against scipy).
"""

from __future__ import annotations

import threading
from collections.abc import Sequence

import numpy as np

EPSILON = 1e-4  # share given to an empty bin, so that the logarithm stays finite


def cdf_knots(percentiles: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
    """The distinct percentile values and the CDF at each (a tie takes its largest share)."""
    q = np.asarray(percentiles, dtype="float64")
    values, rank = np.unique(q, return_inverse=True)
    cum = np.zeros(len(values))
    np.maximum.at(cum, rank, np.linspace(0.0, 1.0, len(q)))
    return values, cum


def reference_cdf(percentiles: Sequence[float]):
    """The CDF rebuilt from the percentiles: piecewise linear, a tie a jump, 0 below the min, 1 above the max."""
    values, cum = cdf_knots(percentiles)
    return lambda x: np.interp(x, values, cum, left=0.0, right=1.0)


def psi_bins(percentiles: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
    """Inner edges of ten bins cut at the deciles (the outer two open-ended), each bin's expected share."""
    q = np.asarray(percentiles, dtype="float64")
    inner = np.unique(q[10:100:10])
    expected = np.diff(np.concatenate([[0.0], reference_cdf(q)(inner), [1.0]]))
    return inner, np.clip(expected, EPSILON, None)


def psi(observed: np.ndarray, percentiles: Sequence[float]) -> float:
    """Population stability index of ``observed`` against the reference percentiles, on decile bins."""
    return binned_psi(observed, *psi_bins(percentiles))


def binned_psi(observed: np.ndarray, inner: np.ndarray, expected: np.ndarray) -> float:
    """``psi`` on bins already cut by ``psi_bins``."""
    counts = np.bincount(np.searchsorted(inner, observed), minlength=len(inner) + 1)
    actual = np.clip(counts / max(len(observed), 1), EPSILON, None)
    return float(np.sum((actual - expected) * np.log(actual / expected)))


def warm_up() -> threading.Thread:
    """Import scipy's statistics (over a second) in the background, so that a service starts without waiting."""
    thread = threading.Thread(target=__import__, args=("scipy.stats",), name="scipy-warm-up", daemon=True)
    thread.start()
    return thread


def ks(observed: np.ndarray, percentiles: Sequence[float]) -> tuple[float, float]:
    """KS statistic and p-value of ``observed`` against the reference CDF.

    The p-value assumes independent values: consecutive readings of a pump are not, so it informs only.
    """
    statistics, p_values = ks_rows(np.asarray(observed, dtype="float64").reshape(1, -1), [cdf_knots(percentiles)])
    return float(statistics[0]), float(p_values[0])


def ks_rows(samples: np.ndarray, knots: Sequence[tuple[np.ndarray, np.ndarray]]) -> tuple[np.ndarray, np.ndarray]:
    """``scipy.stats.kstest`` (exact ``kstwo`` distribution) of each row of ``samples`` against its ``knots``."""
    from scipy import stats  # on first use, or imported by warm_up

    k, n = samples.shape
    if n == 0:
        return np.full(k, np.nan), np.full(k, np.nan)
    x = np.sort(samples, axis=1)
    cdf = np.array(
        [np.interp(row, values, cum, left=0.0, right=1.0) for row, (values, cum) in zip(x, knots, strict=True)]
    )
    above = (np.arange(1.0, n + 1) / n - cdf).max(axis=1)  # D+
    below = (cdf - np.arange(0.0, n) / n).max(axis=1)  # D-
    statistics = np.where(above > below, above, below)
    return statistics, np.clip(np.asarray(stats.kstwo.sf(statistics, n), dtype="float64"), 0.0, 1.0)
