"""common/decision.py: Anomalie exactly when the score is above the threshold."""

from __future__ import annotations

import numpy as np

from common.decision import ANOMALY, DECISIONS, NORMAL, decide, decide_all, is_anomaly


def test_the_words_a_client_reads():
    assert (NORMAL, ANOMALY) == DECISIONS == ("Normal", "Anomalie")


def test_anomaly_exactly_above_the_threshold_on_both_sides_of_it():
    threshold = 0.5731
    scores = np.concatenate([np.linspace(0.3, 0.9, 601), [threshold, np.nextafter(threshold, 1.0)]])
    decisions = decide_all(scores, threshold)
    assert decisions == [ANOMALY if s > threshold else NORMAL for s in scores.tolist()]
    assert decisions.count(ANOMALY) == int((scores > threshold).sum()) > 0
    assert decide(threshold, threshold) == NORMAL and not is_anomaly(threshold, threshold)
    assert decide(np.nextafter(threshold, 1.0), threshold) == ANOMALY
    assert decide_all([], threshold) == []
