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
    assert all(len(t) <= scorer.history for t in scorer._tails.values())
