"""common/readings.py: a batch of validated readings becomes the same frame as the plain way builds it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import pytest

from common.data import frame_from_readings
from common.readings import Reading, ReadingList, TimedReadingList, readings_frame
from common.schema import EQUIPMENT_ID, EXAMPLE_READING, SENSOR_NAMES, TIMESTAMP


def plain_frame(readings) -> pd.DataFrame:
    return frame_from_readings([r.model_dump() for r in readings])


def series(n: int) -> list[dict]:
    """Readings as a batch sends them: several equipments, awkward floats, dates with and without a time zone."""
    floats = [0.0, -0.0, 1e-7, 0.1 + 0.2, 1 / 3, 5e-324]
    items = []
    for i in range(n):
        reading = {**EXAMPLE_READING, "accelerometer1_rms": floats[i % len(floats)], "current": i % 7}
        reading[EQUIPMENT_ID] = ["pompe-01", "pompe-02", 'a;"b"'][i % 3]
        stamp = datetime(2026, 1, 5, tzinfo=UTC) + timedelta(seconds=i, microseconds=7 * i)
        reading[TIMESTAMP] = stamp.isoformat() if i % 2 else stamp.astimezone().replace(tzinfo=None).isoformat()
        items.append(reading)
    return items


@pytest.mark.parametrize("n", [0, 1, 2, 64, 65, 1000])
def test_a_dated_batch_gives_the_frame_of_its_dumped_readings(n):
    readings = TimedReadingList.validate_python(series(n))
    pd.testing.assert_frame_equal(readings_frame(readings), plain_frame(readings))


def test_readings_without_a_date_are_stamped_now_like_the_plain_frame():
    before = pd.Timestamp.now(tz="UTC").tz_localize(None)
    items = [{**EXAMPLE_READING, "pressure": 1.5 + i} for i in range(40)]
    for readings in (ReadingList.validate_python(items), TimedReadingList.validate_python(items)):
        frame, plain = readings_frame(readings), plain_frame(readings)
        after = pd.Timestamp.now(tz="UTC").tz_localize(None)
        assert frame[TIMESTAMP].between(before, after).all()
        assert frame[TIMESTAMP].dtype == plain[TIMESTAMP].dtype
        pd.testing.assert_frame_equal(frame.drop(columns=TIMESTAMP), plain.drop(columns=TIMESTAMP))


def test_a_batch_partly_dated_gives_the_plain_frame_on_its_dated_rows():
    items = series(6)
    for i in (1, 4):
        del items[i][TIMESTAMP]
    readings = TimedReadingList.validate_python(items)
    frame, plain = readings_frame(readings), plain_frame(readings)
    dated = [0, 2, 3, 5]
    pd.testing.assert_frame_equal(frame.iloc[dated], plain.iloc[dated])
    assert frame[TIMESTAMP].iloc[[1, 4]].notna().all()


def test_scores_of_the_frame_equal_those_of_the_plain_frame(loaded_model):
    readings = TimedReadingList.validate_python(series(300))
    scores = loaded_model.model.score(readings_frame(readings))
    assert np.array_equal(scores, loaded_model.model.score(plain_frame(readings)))
    assert list(readings_frame([Reading.model_validate(EXAMPLE_READING)]).columns) == [
        TIMESTAMP,
        EQUIPMENT_ID,
        *SENSOR_NAMES,
    ]
