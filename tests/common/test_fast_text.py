"""common/fast_text.py writes exactly what json.dumps and csv.writer write, row by row."""

from __future__ import annotations

import csv
import io
import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from common.fast_text import canonical_json, canonical_json_rows, csv_lines

AWKWARD_FLOATS = [1e-7, 1e16, -0.0, 0.0, 0.1 + 0.2, 2.0**53 + 1, 5e-324, 1 / 3, 123456789.0, 1e300, -1e-300]
AWKWARD_TEXTS = ["", "pompe-01", "é", "a;b", 'a "b"', "ligne\nsuivante", "\r", "\u2028", "x\\y", " espace", "0.0"]


def plain_json(value) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def plain_csv(rows, delimiter=";") -> str:
    buffer = io.StringIO()
    csv.writer(buffer, delimiter=delimiter, lineterminator="\n").writerows(rows)
    return buffer.getvalue()


def batch(n: int) -> list[dict]:
    """Rows as a batch has them: the same keys, shared texts, floats cycling through awkward values."""
    return [
        {
            "score": AWKWARD_FLOATS[i % len(AWKWARD_FLOATS)],
            "seq": i,
            "actor": "atelier é",
            "client": [None, "127.0.0.1", 'a "b"\n'][i % 3],
            "inputs": AWKWARD_TEXTS[i % len(AWKWARD_TEXTS)],
            "flag": [True, False, 0, 1.5][i % 4],
            "nested": {"b": [1, {"z": -0.0}], "a": None} if i % 5 == 0 else None,
            "zero_or_text": [0.0, -0.0, "0"][i % 3],
        }
        for i in range(n)
    ]


def test_canonical_json_is_json_dumps_with_sorted_keys_and_no_spaces():
    value = {"b": [1.5, None, "é"], "a": {"d": -0.0, "c": 5e-324}}
    assert canonical_json(value) == plain_json(value) == '{"a":{"c":5e-324,"d":-0.0},"b":[1.5,null,"é"]}'


@pytest.mark.parametrize("n", [0, 1, 2, 7, 40, 1000])
def test_rows_of_a_batch_are_written_as_json_dumps_writes_each(n):
    rows = batch(n)
    assert canonical_json_rows(rows) == [plain_json(row) for row in rows]


def test_rows_with_different_keys_or_types_fall_back_to_json_dumps():
    rows = [{"a": 1.0}, {"b": 2.0}, {"a": 1.0, "b": None}, {}, {1: "clé entière"}] * 2
    assert canonical_json_rows(rows) == [plain_json(row) for row in rows]
    assert canonical_json_rows([{"a": 1.0}] * 9 + [{"a": 1.0, "b": 2}]) == ['{"a":1.0}'] * 9 + ['{"a":1.0,"b":2}']
    assert canonical_json_rows([[1, 2], "texte"]) == ["[1,2]", '"texte"']


def test_columns_of_equal_values_are_written_value_by_value_when_json_writes_them_differently():
    equal = [[0.0, -0.0], [0, False], [1, 1.0, True], [{"z": 0}, {"z": False}], ["x", "x"], [None, None]]
    rows = [{f"k{j}": values[i % len(values)] for j, values in enumerate(equal)} | {"n": i} for i in range(64)]
    assert canonical_json_rows(rows) == [plain_json(row) for row in rows]
    shuffled = [dict(reversed(row.items())) if i % 2 else row for i, row in enumerate(rows)]
    assert canonical_json_rows(shuffled) == [plain_json(row) for row in shuffled]
    with pytest.raises(ValueError):
        canonical_json_rows([{"a": "x", "score": float("nan")}] * 40)


def test_sensor_columns_of_floats_are_written_as_repr():
    rows = [{"pressure": x, "temperature": 70.0 + i / 7} for i, x in enumerate(AWKWARD_FLOATS * 10)]
    assert canonical_json_rows(rows) == [plain_json(row) for row in rows]


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf")])
def test_a_value_json_cannot_hold_is_refused_as_json_dumps_refuses_it(bad):
    rows = [{"score": 0.5}] * 40 + [{"score": bad}]
    with pytest.raises(ValueError):
        plain_json(rows[-1])
    with pytest.raises(ValueError):
        canonical_json_rows(rows)


def test_csv_lines_are_what_csv_writer_writes():
    rows = [
        ("2026-01-05T10:00:00.000+00:00", f"req-{i % 3}", AWKWARD_TEXTS[i % len(AWKWARD_TEXTS)], None, *AWKWARD_FLOATS)
        for i in range(60)
    ]
    assert csv_lines(rows, ";") == plain_csv(rows, ";")
    mixed = [("a", 1, True, 0.5), ("", 2, False, float("nan")), (None, -0.0, 3, float("inf"))]
    assert csv_lines(mixed, ";") == plain_csv(mixed, ";")
    assert csv_lines(mixed * 10, ";") == plain_csv(mixed * 10, ";")  # enough rows to be written by column
    assert csv_lines([("",)], ";") == plain_csv([("",)], ";") == '""\n'  # a lone empty field is quoted
    assert csv_lines([], ";") == "" and csv_lines([("a", "b"), ("c",)], ",") == plain_csv([("a", "b"), ("c",)], ",")


scalars = st.one_of(
    st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False, allow_infinity=False), st.text(max_size=8)
)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.fixed_dictionaries({"a": scalars, "b": scalars, "é": scalars}), max_size=40))
def test_any_batch_of_rows_is_written_as_json_dumps_writes_it(rows):
    assert canonical_json_rows(rows) == [plain_json(row) for row in rows]


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(scalars, scalars, st.floats()), max_size=40))
def test_any_rows_are_written_as_csv_writer_writes_them(rows):
    assert csv_lines(rows, ";") == plain_csv(rows, ";")


@pytest.mark.parametrize("delimiter", [";", ",", "\t", "|", ":"])
def test_neighbouring_float_columns_and_constant_columns_are_written_as_csv_writer_writes_them(delimiter):
    varied = [AWKWARD_FLOATS[(i * 7) % len(AWKWARD_FLOATS)] * (1 + i / 1000) for i in range(200)]
    rows = [
        ("2026-01-05T10:00:00.000+00:00", "req;1", 'a "b"', x, 0.5 + i, float("nan") if i == 99 else 1.0, -x, 230.0)
        for i, x in enumerate(varied)
    ]
    assert csv_lines(rows, delimiter) == plain_csv(rows, delimiter)
    zeros = [(0.0 if i % 2 else -0.0, 0 if i % 3 else False, 0.0, i / 3, "0") for i in range(64)]
    assert csv_lines(zeros, delimiter) == plain_csv(zeros, delimiter)  # equal values, written differently


@settings(max_examples=100, deadline=None)
@given(
    st.lists(st.tuples(st.sampled_from(["a", "b;c"]), st.floats(), st.floats(), scalars), min_size=32, max_size=80),
    st.sampled_from([";", ","]),
)
def test_any_rows_with_float_columns_side_by_side_are_written_as_csv_writer_writes_them(rows, delimiter):
    assert csv_lines(rows, delimiter) == plain_csv(rows, delimiter)
