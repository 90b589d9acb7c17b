"""The decision a service answers for a score: its two words and the rule, written once.

A reading is an anomaly when its score is above the alarm threshold stored with the
model (``AnomalyModel.threshold_``, learnt from training data only); a score equal to
the threshold is normal. Every stage, every path (one reading, a batch, a file, the
stream) and every reader of the logs uses these names.

>>> decide(0.61, threshold=0.6), decide(0.6, threshold=0.6)
('Anomalie', 'Normal')
"""

from __future__ import annotations

from collections.abc import Iterable

NORMAL = "Normal"
ANOMALY = "Anomalie"
DECISIONS = (NORMAL, ANOMALY)


def is_anomaly(score: float, threshold: float) -> bool:
    """True when ``score`` is above ``threshold``: the alarm rule."""
    return score > threshold


def decide(score: float, threshold: float) -> str:
    """``"Anomalie"`` when ``score`` is above ``threshold``, else ``"Normal"``."""
    return ANOMALY if is_anomaly(score, threshold) else NORMAL


def decide_all(scores: Iterable[float], threshold: float) -> list[str]:
    """``decide`` for each score, in order (a list, an array or a column of scores)."""
    return [decide(score, threshold) for score in scores]
