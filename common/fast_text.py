"""Text of many rows at once: canonical JSON and CSV lines, the same as the standard library writes them.

A batch of 1,000 readings writes 1,000 audit rows (their hash covers the canonical JSON of
each) and 1,000 inference-log lines. Row by row, ``json.dumps`` and ``csv.writer`` spend
most of their time writing floats and repeating the texts that every row of a batch shares
(actor, request id, model version). These functions take the rows of a batch together and
work column by column: floats with ``common.data.float_texts`` (neighbouring float columns
of a CSV row in one block), each distinct text once, a column of one value once.
Their output is exactly that of the plain calls they replace, which the docstrings name and
tests/common/test_fast_text.py compares on awkward values (-0.0, 5e-324, NaN, quotes,
line separators, mixed types).
"""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Mapping, Sequence
from itertools import repeat
from json.encoder import encode_basestring
from operator import itemgetter
from typing import Any

import numpy as np
from pydantic_core import to_json

from common.data import FLOAT_TEXTS_MIN_COLUMN, float_texts


def canonical_json(value: Any) -> str:
    """The one JSON spelling of ``value`` (sorted keys, no spaces, text as is); ValueError for NaN or infinity."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


JSON_COLUMNS_MIN_ROWS = 8  # measured: below this many rows, json.dumps row by row is faster


def canonical_json_rows(rows: Sequence[Mapping[str, Any]]) -> list[str]:
    """``[canonical_json(row) for row in rows]``, worked out column by column when the rows (eight or more) are dicts
    with the same keys.

    Raises what ``canonical_json`` raises for the first row it cannot write.
    """
    n = len(rows)
    keys = rows[0].keys() if rows and type(rows[0]) is dict else {}
    if (
        n < JSON_COLUMNS_MIN_ROWS
        or not keys
        or not all(type(key) is str for key in keys)
        or set(map(type, rows)) != {dict}
        or list(map(dict.keys, rows)).count(keys) != n  # the same keys (in any order: they are sorted)
    ):
        return [canonical_json(row) for row in rows]
    parts, constant = [], ""  # the text shared by every row since the last column that varies
    for i, key in enumerate(sorted(keys)):
        constant += "{,"[i > 0] + encode_basestring(key) + ":"
        column = list(map(itemgetter(key), rows))
        if type(column[0]) in JSON_SCALARS and _constant(column):
            constant += _json(column[0])
        else:
            parts += [repeat(constant, n), _json_column(column)]
            constant = ""
    parts.append(repeat(constant + "}", n))
    return list(map("".join, zip(*parts, strict=True)))


JSON_SCALARS = (str, int, float, type(None))  # a value equal to another is written alike if of the same type


def _json(value: Any) -> str:
    """``canonical_json(value)``, without the encoder's set-up for the values a row mostly holds."""
    if value is None:
        return "null"
    kind = type(value)
    if kind is str:
        return encode_basestring(value)
    if kind is float and math.isfinite(value):
        return float.__repr__(value)
    if kind is int:
        return int.__repr__(value)
    return canonical_json(value)


def _json_column(values: list[Any]) -> list[str]:
    """``_json`` of each value of a column; each distinct text or number worked out once.

    Values are only looked up by value when there is no zero among them: a set takes 0.0,
    -0.0, 0 and False for the same value, canonical JSON does not.
    """
    types = set(map(type, values))
    if types == {float} and all(map(math.isfinite, values)):
        return float_texts(values)
    if types == {str}:
        return list(map(encode_basestring, values))
    if types == {int}:
        return list(map(int.__repr__, values))
    if not types <= {str, float, type(None)}:
        return list(map(_json, values))
    distinct = set(values)
    if 0.0 in distinct or 2 * len(distinct) > len(values):  # a zero, or mostly distinct values
        return list(map(_json, values))
    texts = {value: _json(value) for value in distinct}
    return list(map(texts.__getitem__, values))


CSV_COLUMNS_MIN_ROWS = 16  # measured: below this many rows, csv.writer itself is faster


def csv_lines(rows: Sequence[Sequence[Any]], delimiter: str = ",") -> str:
    """What ``csv.writer(buffer, delimiter=delimiter, lineterminator="\\n").writerows(rows)`` writes, column by column.

    A few rows (one reading), rows of one field, or of different lengths, are left to the
    plain writer (it quotes a lone empty field). A column holding one value (the request id of a batch) is written
    once; neighbouring columns of floats (a reading's sensors and its score) are written
    together, each row's part in one piece (``_float_block``).
    """
    if len(rows) < CSV_COLUMNS_MIN_ROWS or len(rows[0]) < 2 or len(set(map(len, rows))) != 1:
        return _csv_plain(rows, delimiter)
    n, columns = len(rows), list(zip(*rows, strict=True))
    constant = list(map(_constant, columns))
    floats = [
        not same and n >= FLOAT_TEXTS_MIN_COLUMN and set(map(type, column)) == {float}
        for column, same in zip(columns, constant, strict=True)
    ]
    parts, start = [], 0
    while start < len(columns):
        end = start + 1
        if floats[start] and delimiter in FLOAT_BLOCK_DELIMITERS:
            while end < len(columns) and floats[end]:
                end += 1
        if end - start > 1:
            parts.append(_float_block(columns[start:end], delimiter))
        elif constant[start]:
            parts.append(_csv_column([columns[start][0]], delimiter) * n)
        else:
            parts.append(_csv_column(list(columns[start]), delimiter))
        start = end
    return "\n".join(map(delimiter.join, zip(*parts, strict=True))) + "\n"


def _constant(column: Sequence[Any]) -> bool:
    """One value, written alike in every row: all equal (``count`` compares with ==), of one type, not a zero
    (0.0 == -0.0)."""
    first = column[0]
    return column.count(first) == len(column) and len(set(map(type, column))) == 1 and first != 0


FLOAT_BLOCK_DELIMITERS = frozenset(",;\t|")  # never inside a float's text: no float field is quoted


def _float_block(columns: Sequence[Sequence[float]], delimiter: str) -> list[str]:
    """Each row of neighbouring float columns as csv.writer writes it (``repr`` of each, joined by ``delimiter``).

    pydantic's JSON writer writes the whole block in one compiled call, with the same
    digits as ``repr`` (see ``common.data.float_texts``); the rows holding a value where the
    two differ (an exponent, NaN, infinity) are written by ``repr``.
    """
    block = list(zip(*columns, strict=True))
    text = to_json(block).decode()[2:-2]
    if delimiter != ",":
        text = text.replace(",", delimiter)
    lines = text.split("]" + delimiter + "[")
    size = np.abs(np.array(columns, dtype="float64"))
    plain = (((size >= 1e-4) & (size < 1e16)) | (size == 0)).all(axis=0)  # NaN compares False
    for i in np.flatnonzero(~plain).tolist():
        lines[i] = delimiter.join(map(repr, block[i]))
    return lines


def _csv_plain(rows: Sequence[Sequence[Any]], delimiter: str) -> str:
    buffer = io.StringIO()
    csv.writer(buffer, delimiter=delimiter, lineterminator="\n").writerows(rows)
    return buffer.getvalue()


def _csv_field(value: Any, delimiter: str) -> str:
    """One field as csv.writer writes it in a row of several (a lone empty field would be quoted)."""
    return _csv_plain([(value, "")], delimiter)[: -len(delimiter) - 1]


def _csv_column(values: list[Any], delimiter: str) -> list[str]:
    """``_csv_field`` of each value of a column: floats by ``float_texts``, each distinct text once."""
    types = set(map(type, values))
    if types == {float}:
        return float_texts(values)  # repr, as csv.writer writes a float
    if types <= {str, type(None)}:
        texts = {value: _csv_field(value, delimiter) for value in set(values)}
        return list(map(texts.__getitem__, values))
    return [_csv_field(value, delimiter) for value in values]
