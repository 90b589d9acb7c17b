"""Trailing windows over each equipment's series of readings, the same to the last bit
whatever the batch.

A reading is described by the window of readings of the same equipment that end with
it (``common.features``). Scoring a reading alone, with its history, or inside a whole
file must give it the same window statistics, so they are computed here from exactly
the same values in the same order (no running sums), in the order numpy itself adds
them, and a test compares them with the plain definition. This is the numeric machinery
under the features: a student reads ``common.features`` for what is computed and why;
this module says how, fast and exactly, for one reading or a million.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from common.schema import EQUIPMENT_ID, TIMESTAMP


@dataclass(frozen=True)
class SeriesLayout:
    """Where each equipment's series of readings lies in a frame.

    ``order`` lists the rows grouped by equipment, each group in time order (ties keep
    the frame's order); ``None`` when the rows already are in that order as one series,
    the usual case (one reading, a file of one pump), which then costs no reordering.
    ``position`` is the rank of each row of ``order`` in its own series; ``None`` when
    there is a single series (the rank is then the row number).
    """

    order: np.ndarray | None = None
    position: np.ndarray | None = None


def series_layout(frame: pd.DataFrame) -> SeriesLayout:
    """The per-equipment, time-ordered series of a frame's rows (see ``SeriesLayout``)."""
    if len(frame) < 2:
        return SeriesLayout()
    equipment = frame[EQUIPMENT_ID].to_numpy() if EQUIPMENT_ID in frame else None
    times = frame[TIMESTAMP].to_numpy() if TIMESTAMP in frame else None
    if equipment is None or (equipment == equipment[0]).all():
        if times is None or (times[1:] >= times[:-1]).all():
            return SeriesLayout()
        return SeriesLayout(np.lexsort((times,)))
    codes = pd.factorize(equipment)[0]
    order = np.lexsort((times, codes)) if times is not None else np.argsort(codes, kind="stable")
    grouped = codes[order]
    starts = np.flatnonzero(np.concatenate([[True], grouped[1:] != grouped[:-1]]))
    position = np.arange(len(frame)) - np.repeat(starts, np.diff(np.append(starts, len(frame))))
    return SeriesLayout(order, position)


# Windows are sums of ``window`` terms, term j being the value j - window + 1 rows back in
# the series. The sums add the terms in the order numpy's ``sum`` over a window axis does
# (sequentially; pairwise for a single column, numpy's contiguous reduction), so that the
# results stay those of the plain definition to the last bit (a test compares them).


def _sequential_sum(terms: list[np.ndarray]) -> np.ndarray:
    total = terms[0].copy()
    for term in terms[1:]:
        total += term
    return total


def _pairwise_sum(terms: list[np.ndarray]) -> np.ndarray:
    """numpy's pairwise summation (``pairwise_sum`` in its C loops), term by term."""
    n = len(terms)
    if n < 8:
        return _sequential_sum(terms)
    if n <= 128:
        partial = [t.copy() for t in terms[:8]]
        i = 8
        while i < n - n % 8:
            for j in range(8):
                partial[j] += terms[i + j]
            i += 8
        total = ((partial[0] + partial[1]) + (partial[2] + partial[3])) + (
            (partial[4] + partial[5]) + (partial[6] + partial[7])
        )
        return _sequential_sum([total, *terms[i:]])
    half = n // 2
    half -= half % 8
    return _pairwise_sum(terms[:half]) + _pairwise_sum(terms[half:])


def trailing_stats(
    raw: np.ndarray, columns: list[int], layout: SeriesLayout, window: int
) -> tuple[np.ndarray, np.ndarray]:
    """Mean and standard deviation (ddof 1) of ``raw[:, columns]`` over each row's full trailing window.

    NaN where the window is not full: fewer than ``window`` readings so far in the
    series, or a NaN in any column of ``raw`` in the window. Columns follow ``columns``.
    """
    n, k = len(raw), len(columns)
    mean, std = np.full((n, k), np.nan), np.full((n, k), np.nan)
    if n < window:
        return mean, std
    ordered = raw if layout.order is None else raw[layout.order]
    missing = np.concatenate([[0], np.cumsum(np.isnan(ordered).any(axis=1))])
    full = missing[window:] == missing[: n - window + 1]  # rows window-1 .. n-1 of the series order
    if layout.position is not None:
        full &= layout.position[window - 1 :] >= window - 1
    values = ordered[:, columns]
    terms = [values[j : n - window + 1 + j] for j in range(window)]
    tail_mean = _sequential_sum(terms) / window
    if window == 1:
        tail_std = np.zeros_like(tail_mean)
    else:
        squares, deviation = np.zeros_like(tail_mean), np.empty_like(tail_mean)
        for term in terms:  # sequentially, as above; in place, to stay in cache
            np.subtract(term, tail_mean, out=deviation)
            squares += np.multiply(deviation, deviation, out=deviation)
        tail_std = np.sqrt(squares / (window - 1))
    rows = np.flatnonzero(full) + window - 1
    rows = rows if layout.order is None else layout.order[rows]
    mean[rows], std[rows] = tail_mean[full], tail_std[full]
    return mean, std


def _trailing_mean(values: np.ndarray, layout: SeriesLayout, window: int) -> np.ndarray:
    """Mean of a (rows, k) array over each row's trailing window (the rows available; NaN counts as 0)."""
    n, k = values.shape
    filled = np.nan_to_num(values, nan=0.0)
    if n < 2:
        return filled + 0.0  # the sum of a lone value with the window's zero padding
    ordered = filled if layout.order is None else filled[layout.order]
    padded = np.concatenate([np.zeros((window - 1, k)), ordered])
    terms = [padded[j : j + n] for j in range(window)]
    position = np.arange(n) if layout.position is None else layout.position
    if layout.position is not None:  # a window does not reach back into the previous series
        for j in range(window - 1):
            terms[j] = np.where((position < window - 1 - j)[:, None], 0.0, terms[j])
    sums = _pairwise_sum(terms) if k == 1 else _sequential_sum(terms)
    valid = ~np.isnan(values if layout.order is None else values[layout.order])
    seen = np.concatenate([np.zeros((1, k), dtype=np.int64), np.cumsum(valid, axis=0)])
    counts = seen[1:] - seen[np.arange(n) - np.minimum(position, window - 1)]
    mean = sums / np.maximum(counts, 1)
    if layout.order is None:
        return mean
    out = np.empty_like(mean)
    out[layout.order] = mean
    return out


def trailing_mean(
    frame: pd.DataFrame, values: np.ndarray, window: int, layout: SeriesLayout | None = None
) -> np.ndarray:
    """Mean of ``values`` (one per row of ``frame``) over each row's trailing window.

    The window holds the last ``window`` readings of the row's equipment, in time
    order, ending with the row (fewer at the start of a series). Rows are the rows of
    ``frame``; the result has the shape of ``values``. ``layout`` (``series_layout(frame)``)
    saves working it out again when the caller already has it.
    """
    layout = series_layout(frame) if layout is None else layout
    return trailing_mean_of_values(values, window, layout)


def trailing_mean_of_values(values: np.ndarray, window: int, layout: SeriesLayout = SeriesLayout()) -> np.ndarray:
    """``trailing_mean`` of values laid out as ``layout`` says (one series in time order by default)."""
    values = np.asarray(values, dtype="float64")
    return _trailing_mean(values.reshape(len(values), -1), layout, window).reshape(values.shape)
