"""Sensor schema: every refusal names the field, in French, for every sensor."""

from __future__ import annotations

import math

import pandas as pd
import pytest
from pydantic import ValidationError

from common.messages import field_errors
from common.readings import Reading
from common.schema import EXAMPLE_READING, SENSORS, invalid_rows


def refusals(data) -> list[dict[str, str]]:
    with pytest.raises(ValidationError) as error:
        Reading.model_validate(data)
    return field_errors(error.value.errors())


def test_example_reading_is_valid():
    assert Reading.model_validate(EXAMPLE_READING).model_dump(include=set(EXAMPLE_READING)) == EXAMPLE_READING


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, "valeur manquante"),
        (math.nan, "NaN"),
        (math.inf, "infinie"),
        (-math.inf, "infinie"),
        ("12", "n'est pas un nombre"),
        (True, "n'est pas un nombre"),
        (1e9, "hors de la plage plausible"),
        (10**400, "hors de la plage plausible"),  # beyond any float: refused, not an OverflowError
    ],
)
@pytest.mark.parametrize("sensor", [s.name for s in SENSORS])
def test_bad_values_are_refused_naming_the_field(sensor, value, expected):
    [error] = refusals({**EXAMPLE_READING, sensor: value})
    assert error["field"] == sensor
    assert f"({sensor}) : " in error["message"] and expected in error["message"]


def test_missing_and_unknown_fields():
    partial = dict(EXAMPLE_READING)
    del partial["current"]
    assert [e["field"] for e in refusals(partial)] == ["current"]
    assert [e["field"] for e in refusals({**EXAMPLE_READING, "courant": 1.0})] == ["courant"]


def test_invalid_rows_gives_one_reason_per_bad_row():
    frame = pd.DataFrame([EXAMPLE_READING] * 4)
    frame.loc[1, "voltage"] = 9000.0
    frame.loc[2, "current"] = float("nan")
    frame.loc[3, "pressure"] = float("inf")
    reasons = invalid_rows(frame)
    assert reasons.index.tolist() == [1, 2, 3]
    assert reasons[1].startswith("voltage : 9000 V est hors")
    assert reasons[2] == "current : valeur manquante"
    assert reasons[3] == "pressure : valeur infinie refusée"
