from __future__ import annotations

import pytest

from common.metrics import detection_metrics


def test_skab_definitions():
    # 3 TP, 1 FN, 2 FP, 4 TN
    truth = [1, 1, 1, 1, 0, 0, 0, 0, 0, 0]
    pred = [1, 1, 1, 0, 1, 1, 0, 0, 0, 0]
    m = detection_metrics(truth, pred)
    assert (m["tp"], m["fn"], m["fp"], m["tn"]) == (3, 1, 2, 4)
    assert m["precision"] == pytest.approx(3 / 5)
    assert m["recall"] == pytest.approx(3 / 4)
    assert m["f1"] == pytest.approx(3 / (3 + (1 + 2) / 2))
    assert m["far"] == pytest.approx(100 * 2 / 6)
    assert m["mar"] == pytest.approx(100 * 1 / 4)


def test_flagging_everything_has_full_recall_and_far():
    m = detection_metrics([0, 1, 0, 1], [1, 1, 1, 1])
    assert m["recall"] == 1 and m["far"] == 100 and m["mar"] == 0


def test_no_positive_gives_zeros_not_errors():
    m = detection_metrics([0, 0], [0, 0])
    assert m["precision"] == 0 and m["f1"] == 0 and m["far"] == 0


def test_lengths_must_match():
    with pytest.raises(ValueError):
        detection_metrics([0, 1], [0])
