"""Detection metrics: precision, recall, F1 and SKAB's false and missed alarm rates.

SKAB defines F1 = TP / (TP + (FN + FP) / 2) (the usual F1),
FAR = FP / (FP + TN) · 100 and MAR = FN / (FN + TP) · 100, in percent.

>>> detection_metrics([0, 0, 1, 1], [0, 1, 1, 0])["f1"]
0.5
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np


def confusion(y_true: Iterable, y_pred: Iterable) -> dict[str, int]:
    """Counts of true/false positives/negatives; positives are anomalies (1/True)."""
    t = np.asarray(y_true).astype(bool)
    p = np.asarray(y_pred).astype(bool)
    if t.shape != p.shape:
        raise ValueError("y_true and y_pred must have the same length")
    return {
        "tp": int(np.sum(t & p)),
        "fp": int(np.sum(~t & p)),
        "fn": int(np.sum(t & ~p)),
        "tn": int(np.sum(~t & ~p)),
    }


def _ratio(num: float, den: float) -> float:
    return float(num / den) if den else 0.0


def rates(counts: dict[str, int]) -> dict[str, float]:
    """Precision, recall, F1 (0 to 1) and FAR, MAR (percent) from confusion counts."""
    tp, fp, fn, tn = counts["tp"], counts["fp"], counts["fn"], counts["tn"]
    return {
        "precision": _ratio(tp, tp + fp),
        "recall": _ratio(tp, tp + fn),
        "f1": _ratio(tp, tp + (fn + fp) / 2),
        "far": 100 * _ratio(fp, fp + tn),
        "mar": 100 * _ratio(fn, fn + tp),
    }


def detection_metrics(y_true: Iterable, y_pred: Iterable) -> dict[str, float]:
    """Confusion counts and rates of a set of decisions against labels."""
    counts = confusion(y_true, y_pred)
    return {**counts, **rates(counts)}
