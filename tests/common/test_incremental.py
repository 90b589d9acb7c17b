"""Incremental scoring gives the whole-series scores, bit for bit."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from common.incremental import IncrementalScorer, OutOfOrderError
from common.simulator import simulate


@pytest.fixture(scope="module")
def series():
    a = simulate("valve_closure", seed=41, hours=4, equipment_id="a")
    b = simulate("cavitation", seed=42, hours=4, equipment_id="b")
    return pd.concat([a, b]).sort_values("timestamp", kind="stable").reset_index(drop=True)


def test_one_reading_at_a_time_equals_whole_series(loaded_model, series):
    whole = loaded_model.model.score(series)
    scorer = IncrementalScorer(loaded_model.model)
    one_by_one = np.concatenate([scorer.score(series.iloc[i : i + 1]) for i in range(len(series))])
    assert np.array_equal(one_by_one, whole)


@pytest.mark.parametrize("chunk", [1, 7, 37, 1000])
def test_chunks_equal_whole_series(loaded_model, series, chunk):
    whole = loaded_model.model.score(series)
    scorer = IncrementalScorer(loaded_model.model)
    parts = [scorer.score(series.iloc[i : i + chunk]) for i in range(0, len(series), chunk)]
    assert np.array_equal(np.concatenate(parts), whole)


def test_out_of_order_reading_is_refused_and_nothing_recorded(loaded_model, series):
    scorer = IncrementalScorer(loaded_model.model)
    a = series[series["equipment_id"] == "a"].reset_index(drop=True)
    scorer.score(a.iloc[:10])
    with pytest.raises(OutOfOrderError, match="ordre chronologique"):
        scorer.score(a.iloc[5:6])
    # the refused reading left no trace: the series goes on as if it never came
    assert np.array_equal(scorer.score(a.iloc[10:20]), loaded_model.model.score(a.iloc[:20])[10:])


def test_memory_is_bounded_by_equipment_count(loaded_model, series):
    scorer = IncrementalScorer(loaded_model.model, max_equipments=1)
    scorer.score(series.iloc[:50])
    assert len(scorer._tails) == 1
    for tail in scorer._tails.values():
        assert len(tail.times) == len(tail.values) == scorer.history
    scorer.score(series.iloc[50:51])  # the one-reading path bounds it too
    assert len(scorer._tails) == 1
    assert all(len(t.times) == len(t.values) <= scorer.history for t in scorer._tails.values())


def test_single_readings_and_chunks_mixed_equal_whole_series(loaded_model, series):
    whole = loaded_model.model.score(series)
    scorer = IncrementalScorer(loaded_model.model)
    parts, i, sizes = [], 0, [1, 1, 5, 1, 13, 1, 1, 2]
    while i < len(series):
        size = sizes[len(parts) % len(sizes)]
        parts.append(scorer.score(series.iloc[i : i + size]))
        i += size
    assert np.array_equal(np.concatenate(parts), whole)


def test_one_reading_is_scored_without_building_a_frame(loaded_model, series, monkeypatch):
    scorer = IncrementalScorer(loaded_model.model)
    scorer.score(series.iloc[:20])
    expected = loaded_model.model.score(series.iloc[:21])[-1]

    def no_frame(frame):
        raise AssertionError("the general path was taken")

    monkeypatch.setattr(scorer.model, "score", no_frame)
    assert scorer.score(series.iloc[20:21])[0] == expected


@pytest.mark.parametrize("offset", [0, -1])
def test_one_reading_not_later_than_the_last_is_refused_and_nothing_recorded(loaded_model, series, offset):
    a = series[series["equipment_id"] == "a"].reset_index(drop=True)
    scorer = IncrementalScorer(loaded_model.model)
    scorer.score(a.iloc[:10])
    late = a.iloc[9 + offset : 10 + offset]  # the same time as the last reading, or earlier
    with pytest.raises(OutOfOrderError, match="ordre chronologique"):
        scorer.score(late)
    assert np.array_equal(scorer.score(a.iloc[10:11]), loaded_model.model.score(a.iloc[:11])[10:])


def test_readings_scored_one_by_one_without_a_frame_equal_the_whole_series(loaded_model, series):
    """``score_reading`` (a stream message: a validated reading as a mapping) gives the whole series' scores."""
    whole = loaded_model.model.score(series)
    scorer = IncrementalScorer(loaded_model.model)
    readings = series.to_dict("records")
    for reading in readings:
        reading["timestamp"] = reading["timestamp"].to_pydatetime()
    assert np.array_equal([scorer.score_reading(r) for r in readings], whole)


def test_a_reading_not_later_than_the_last_is_refused_by_score_reading_and_nothing_recorded(loaded_model, series):
    a = series[series["equipment_id"] == "a"].reset_index(drop=True).to_dict("records")
    scorer = IncrementalScorer(loaded_model.model)
    first = [scorer.score_reading(r) for r in a[:10]]
    with pytest.raises(OutOfOrderError, match="l'équipement a doivent arriver dans l'ordre chronologique"):
        scorer.score_reading(a[9])
    assert [*first, scorer.score_reading(a[10])] == loaded_model.model.score(pd.DataFrame(a[:11])).tolist()
