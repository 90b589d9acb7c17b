"""Reading and writing sensor files in SKAB's format.

SKAB files are ``;``-separated, CRLF-terminated, with a ``datetime`` column
(``YYYY-MM-DD hh:mm:ss``), the eight sensor columns under their SKAB spellings and,
in labelled files, ``anomaly`` and ``changepoint`` written ``0.0`` / ``1.0``.
An optional ``equipment_id`` column says which pump a row comes from; without it,
every row belongs to the equipment given by the caller.

In memory a sensor frame has the columns ``timestamp``, ``equipment_id``, the eight
snake_case sensor names and, when present, the labels. Every error a person can
cause with a file is a ``DataError`` with a French message that names the column
and, where it helps, the line of the file (the header is line 1).
"""

from __future__ import annotations

import io
import re
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime
from operator import itemgetter
from os import PathLike
from pathlib import Path
from typing import IO, Any

import numpy as np
import pandas as pd
from pydantic_core import to_json

from common.schema import (
    CSV_TO_NAME,
    DEFAULT_EQUIPMENT_ID,
    EQUIPMENT_ID,
    LABELS,
    NAME_TO_CSV,
    SENSOR_NAMES,
    SENSORS,
    TIMESTAMP,
    invalid_rows,
)

Source = str | PathLike | IO[bytes] | IO[str] | bytes

SEPARATOR = ";"
DEFAULT_CHUNK_ROWS = 50_000
REJECT_COLUMNS = ("ligne", "raison", "contenu")  # a rejects file: file line, French reason, the row as read
DATETIME_COLUMN = "datetime"  # SKAB's name for the timestamp column
DATETIME_FORMAT = "%Y-%m-%d %H:%M:%S"
_OTHER_SEPARATORS = {",": "virgule", "\t": "tabulation", "|": "barre verticale"}
READING_KEYS = frozenset((*SENSOR_NAMES, EQUIPMENT_ID, TIMESTAMP))  # the fields of a reading sent as JSON
_PLAIN_TIMESTAMP = "2026-01-05T10:00:00"  # the layout of timestamps the vectorised check reads itself
_TIMESTAMP_DIGITS = np.array([c.isdigit() for c in _PLAIN_TIMESTAMP])
_TIMESTAMP_SEPARATORS = np.array([ord(c) if not c.isdigit() else 0 for c in _PLAIN_TIMESTAMP], dtype=np.uint32)
_SENSORS_OF = itemgetter(*SENSOR_NAMES)
_LOW = np.array([s.low for s in SENSORS])
_HIGH = np.array([s.high for s in SENSORS])


class DataError(ValueError):
    """A file cannot be used as it is; the message (French) says why and where."""

    def __init__(self, message: str, column: str | None = None, line: int | None = None):
        super().__init__(message)
        self.column = column
        self.line = line


def _line(position: int) -> int:
    """File line of the data row at ``position`` (0-based), the header being line 1."""
    return position + 2


@contextmanager
def _csv_errors() -> Iterator[None]:
    """Turn pandas' reading errors into French DataErrors (whole file or one chunk)."""
    try:
        yield
    except pd.errors.EmptyDataError:
        raise DataError("fichier vide : aucune ligne d'en-tête ni de donnée") from None
    except UnicodeDecodeError:
        raise DataError("encodage illisible : le fichier doit être un CSV texte en UTF-8") from None
    except pd.errors.ParserError as exc:  # pandas says it in English: keep the line and the counts only
        found = re.search(r"Expected (\d+) fields? in line (\d+), saw (\d+)", str(exc))
        where = f" : ligne {found[2]}, {found[3]} champs au lieu de {found[1]}" if found else ""
        raise DataError(f"CSV mal formé (séparateur attendu « ; »){where}") from None


def _read(source: Source, chunk_rows: int | None = None) -> Any:
    """The whole file as text columns, or (``chunk_rows``) a reader of chunks of that many rows."""
    if isinstance(source, bytes):
        source = io.BytesIO(source)
    with _csv_errors():
        return pd.read_csv(
            source,
            sep=SEPARATOR,
            dtype=str,
            keep_default_na=False,
            encoding="utf-8",
            chunksize=chunk_rows,
            skip_blank_lines=chunk_rows is None,  # chunks keep blank lines: line numbers stay exact
        )


def _check_header(raw: pd.DataFrame) -> dict[str, str]:
    """Map file columns to internal names, or explain which column is missing."""
    columns = [str(c).strip() for c in raw.columns]
    if len(columns) == 1:
        for sep, label in _OTHER_SEPARATORS.items():
            if sep in columns[0]:
                raise DataError(f"séparateur incorrect : le fichier utilise la {label} (« {sep} ») au lieu de « ; »")
    mapping: dict[str, str] = {}
    for col in columns:
        if col in CSV_TO_NAME or col in SENSOR_NAMES:
            mapping[col] = CSV_TO_NAME.get(col, col)
        elif col in (DATETIME_COLUMN, TIMESTAMP):
            mapping[col] = TIMESTAMP
        elif col in (EQUIPMENT_ID, *LABELS):
            mapping[col] = col
    found = set(mapping.values())
    if TIMESTAMP not in found:
        raise DataError(f"colonne manquante : « {DATETIME_COLUMN} » (date et heure de la mesure)", DATETIME_COLUMN)
    for name in SENSOR_NAMES:
        if name not in found:
            raise DataError(f"colonne manquante : « {NAME_TO_CSV[name]} »", NAME_TO_CSV[name])
    return mapping


def _timestamps(text: pd.Series) -> pd.Series:
    """Parsed dates (UTC, naive), NaT where the text is not a date."""
    parsed = pd.to_datetime(text.str.strip(), format="ISO8601", errors="coerce")
    if getattr(parsed.dt, "tz", None) is not None:
        parsed = parsed.dt.tz_convert("UTC").dt.tz_localize(None)
    return parsed


def _bad_date(text: str) -> str:
    return f"date « {text} » illisible (attendu AAAA-MM-JJ hh:mm:ss)"


def _parse_timestamps(text: pd.Series) -> pd.Series:
    parsed = _timestamps(text)
    bad = np.flatnonzero(parsed.isna().to_numpy())
    if len(bad):
        pos = int(bad[0])
        raise DataError(f"ligne {_line(pos)} : {_bad_date(text.iloc[pos])}", DATETIME_COLUMN, _line(pos))
    return parsed


def _parse_numbers(frame: pd.DataFrame, columns: Iterable[str]) -> None:
    """Convert text columns to float in place; a non-numeric cell is an error."""
    for name in columns:
        text = frame[name].str.strip()
        values = pd.to_numeric(text.where(text != "", None), errors="coerce")
        bad = np.flatnonzero((values.isna() & (text != "")).to_numpy())
        if len(bad):
            pos = int(bad[0])
            column = NAME_TO_CSV.get(name, name)
            raise DataError(
                f"ligne {_line(pos)}, colonne « {column} » : « {frame[name].iloc[pos]} » n'est pas un nombre",
                column,
                _line(pos),
            )
        frame[name] = values.astype("float64")


def _order_problems(frame: pd.DataFrame, last: Mapping[str, pd.Timestamp] | None = None) -> pd.Series:
    """Why rows break their equipment's time order (absent if they do not), indexed like ``frame``.

    Timestamps must increase strictly within each equipment, also after ``last``, the
    latest timestamp of each equipment already accepted (from earlier chunks).
    """
    ts, equipment = frame[TIMESTAMP], frame[EQUIPMENT_ID]
    previous = ts.groupby(equipment, sort=False).cummax().groupby(equipment, sort=False).shift(1)
    if last:
        previous = pd.concat([previous, equipment.map(last).astype(previous.dtype)], axis=1).max(axis=1)
    bad = (ts <= previous).to_numpy()
    return pd.Series(
        [
            f"horodatage {t} {'dupliqué' if t == p else 'antérieur à une mesure précédente du même équipement'} "
            "(les mesures d'un équipement doivent être triées par date, sans doublon)"
            for t, p in zip(ts[bad], previous[bad], strict=True)
        ],
        index=frame.index[bad],
        dtype="object",
    )


def _check_order(frame: pd.DataFrame) -> None:
    """Timestamps must increase strictly within each equipment."""
    problems = _order_problems(frame)
    if len(problems):
        pos = int(problems.index[0])
        raise DataError(f"ligne {_line(pos)} : {problems.iloc[0]}", DATETIME_COLUMN, _line(pos))


def load_csv(source: Source, equipment_id: str = DEFAULT_EQUIPMENT_ID, validate: bool = True) -> pd.DataFrame:
    """Load a SKAB-format CSV into a sensor frame.

    ``source`` is a path, an open file or the file's bytes. ``equipment_id`` is used
    when the file has no ``equipment_id`` column. With ``validate`` (the default) a
    value outside its plausible range is refused too, naming the line and the field.

    Raises DataError for an empty file, a wrong separator, a missing column, a
    non-numeric value, an unreadable date, or unsorted or duplicated timestamps.
    """
    raw = _read(source)
    mapping = _check_header(raw)
    raw.columns = [str(c).strip() for c in raw.columns]
    frame = raw[list(mapping)].rename(columns=mapping)
    if frame.empty:
        raise DataError("fichier vide : l'en-tête est présent mais aucune mesure ne suit")
    frame = frame.reset_index(drop=True)
    frame[TIMESTAMP] = _parse_timestamps(frame[TIMESTAMP])
    labels = [c for c in LABELS if c in frame]
    _parse_numbers(frame, [*SENSOR_NAMES, *labels])
    for label in labels:
        frame[label] = frame[label].fillna(0).astype("int8")
    if EQUIPMENT_ID in frame:
        frame[EQUIPMENT_ID] = frame[EQUIPMENT_ID].str.strip().replace("", equipment_id)
    else:
        frame[EQUIPMENT_ID] = equipment_id
    _check_order(frame)
    if validate:
        reasons = invalid_rows(frame)
        if len(reasons):
            pos = int(reasons.index[0])
            raise DataError(f"ligne {_line(pos)} : {reasons.iloc[0]}", reasons.iloc[0].split(" :")[0], _line(pos))
    return frame[[TIMESTAMP, EQUIPMENT_ID, *SENSOR_NAMES, *labels]]


def _split_chunk(
    raw: pd.DataFrame, mapping: dict[str, str], first_line: int, equipment_id: str, last: dict[str, pd.Timestamp]
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Valid rows of a chunk as a sensor frame, and its rejected rows with line, reason and text.

    ``last`` (the latest accepted timestamp per equipment) is read and updated.
    """
    raw = raw.fillna("")  # missing trailing fields
    raw.index = pd.RangeIndex(first_line, first_line + len(raw))  # file lines
    frame = raw[list(mapping)].rename(columns=mapping)
    reasons = pd.Series("ligne vide", index=raw.index[(raw == "").all(axis=1).to_numpy()], dtype="object")
    frame[TIMESTAMP] = _timestamps(frame[TIMESTAMP])
    bad_dates = frame.index[frame[TIMESTAMP].isna().to_numpy()]
    date_column = next(c for c, name in mapping.items() if name == TIMESTAMP)
    dates = pd.Series([f"{DATETIME_COLUMN} : {_bad_date(t)}" for t in raw.loc[bad_dates, date_column]], index=bad_dates)
    for name in SENSOR_NAMES:
        text = frame[name].str.strip()
        frame[name] = text.where(text != "", None)
    labels = [c for c in LABELS if c in frame]
    label_values = {c: pd.to_numeric(frame[c].str.strip().replace("", "0"), errors="coerce") for c in labels}
    label_reasons = [
        pd.Series(f"{c} : « {v} » n'est pas un nombre", index=v.index[v.isna()], dtype="object")
        for c, v in label_values.items()
    ]
    for found in (dates, invalid_rows(frame), *label_reasons):  # the first problem of a row wins
        reasons = reasons.combine_first(found.astype("object"))
    ok = ~frame.index.isin(reasons.index)
    if EQUIPMENT_ID in frame:
        frame[EQUIPMENT_ID] = frame[EQUIPMENT_ID].str.strip().replace("", equipment_id)
    else:
        frame[EQUIPMENT_ID] = equipment_id
    order = _order_problems(frame[ok], last)
    reasons = reasons.combine_first(DATETIME_COLUMN + " : " + order).sort_index()
    valid = frame[~frame.index.isin(reasons.index)].copy()
    for name in SENSOR_NAMES:
        valid[name] = valid[name].astype("float64")
    for label in labels:
        valid[label] = label_values[label][valid.index].astype("int8")
    last.update(valid.groupby(EQUIPMENT_ID, sort=False)[TIMESTAMP].max())
    rejects = pd.DataFrame(
        {
            REJECT_COLUMNS[0]: reasons.index,
            REJECT_COLUMNS[1]: reasons.to_numpy(),
            REJECT_COLUMNS[2]: [
                SEPARATOR.join(row) if any(row) else "" for row in raw.loc[reasons.index].itertuples(index=False)
            ],
        }
    )
    return valid[[TIMESTAMP, EQUIPMENT_ID, *SENSOR_NAMES, *labels]], rejects


def read_chunks(
    source: Source, chunk_rows: int = DEFAULT_CHUNK_ROWS, equipment_id: str = DEFAULT_EQUIPMENT_ID
) -> Iterator[tuple[pd.DataFrame, pd.DataFrame]]:
    """Read a SKAB-format CSV ``chunk_rows`` rows at a time: memory stays bounded, whatever the file's size.

    Yields, for each chunk, ``(valid, rejects)``: the valid rows as a sensor frame (as
    ``load_csv`` returns, but indexed by file line), and the rows that cannot be scored, with their file line, the
    French reason naming the field (not a number, out of range, missing value, unreadable
    date, timestamp not after the previous one of its equipment, also across chunks) and
    the row as read. Every row is in exactly one of the two.

    Raises DataError if the file itself cannot be used (empty, wrong separator, missing
    column, not UTF-8, malformed CSV), possibly after some chunks were yielded.
    """
    reader = _read(source, chunk_rows)
    mapping: dict[str, str] | None = None
    last: dict[str, pd.Timestamp] = {}
    first_line = _line(0)
    with reader:
        while True:
            with _csv_errors():
                raw = next(reader, None)
            if raw is None:
                break
            if mapping is None:
                mapping = _check_header(raw)
            raw.columns = [str(c).strip() for c in raw.columns]
            yield _split_chunk(raw, mapping, first_line, equipment_id, last)
            first_line += len(raw)
    if mapping is None:
        raise DataError("fichier vide : l'en-tête est présent mais aucune mesure ne suit")


def frame_from_readings(
    readings: Iterable[Mapping[str, Any]],
    equipment_id: str = DEFAULT_EQUIPMENT_ID,
) -> pd.DataFrame:
    """Build a sensor frame from already validated readings (snake_case dicts).

    A reading without ``timestamp`` is stamped now; without ``equipment_id`` it gets
    the default one.
    """
    rows = list(readings)
    now = np.datetime64(datetime.now(UTC).replace(tzinfo=None), "us")
    stamps = [r.get(TIMESTAMP) for r in rows]
    if all(t is None for t in stamps):  # the common case of a live reading: no parsing needed
        times = np.full(len(rows), now)
    else:
        times = pd.to_datetime([now if t is None else t for t in stamps]).as_unit("us").to_numpy()
    columns: dict[str, Any] = {
        TIMESTAMP: times,
        EQUIPMENT_ID: np.array([r.get(EQUIPMENT_ID) or equipment_id for r in rows], dtype=object),
    }
    for name in SENSOR_NAMES:
        columns[name] = np.array([r[name] for r in rows], dtype="float64")
    return pd.DataFrame(columns, copy=False)


def sensor_values(frame: pd.DataFrame) -> np.ndarray:
    """The sensor columns of a frame as a float64 array of shape (rows, 8), in ``SENSOR_NAMES`` order.

    Same values as ``frame[list(SENSOR_NAMES)].to_numpy(dtype="float64")``, which costs
    about 0.3 ms on a one-row frame: more than scoring the reading. Plain float64 columns
    are read straight from the frame's storage instead (``DataFrame._get_column_array``,
    stable from pandas 1 to 3); anything else takes the public path.
    """
    try:
        where = {name: i for i, name in enumerate(frame.columns)}
        columns = [frame._get_column_array(where[name]) for name in SENSOR_NAMES]
        if len(where) == frame.shape[1] and all(isinstance(c, np.ndarray) and c.dtype == np.float64 for c in columns):
            return np.column_stack(columns)
    except (AttributeError, KeyError, TypeError):
        pass
    return frame[list(SENSOR_NAMES)].to_numpy(dtype="float64")


FLOAT_TEXTS_MIN_COLUMN = 32  # measured: below this many values, repr one by one is faster


def float_texts(values: list[float]) -> list[str]:
    """``repr`` of each float (how csv.writer and canonical JSON write them), for a whole column at once.

    pydantic's JSON writer formats a list of floats in one compiled call, with the same
    shortest digits as ``repr``; the two differ only where ``repr`` uses an exponent (below
    1e-4 or from 1e16 on, ``1e-05`` against ``0.00001``) or for NaN and infinities: those
    few are written by ``repr`` (a test compares them on a million values).

    >>> float_texts([0.1 + 0.2, -0.0, 1e-05, 230.0])
    ['0.30000000000000004', '-0.0', '1e-05', '230.0']
    """
    if len(values) < FLOAT_TEXTS_MIN_COLUMN:  # a reading or a few: repr itself costs less than the setup
        return [repr(value) for value in values]
    texts = to_json(values).decode().removeprefix("[").removesuffix("]").split(",")
    size = np.abs(np.asarray(values, dtype="float64"))
    for i in np.flatnonzero(~(((size >= 1e-4) & (size < 1e16)) | (size == 0))).tolist():  # NaN compares False
        texts[i] = repr(values[i])
    return texts


def write_csv(
    frame: pd.DataFrame, target: str | PathLike | IO[str], with_equipment: bool = False, header: bool = True
) -> None:
    """Write a sensor frame in SKAB's format (``;``, CRLF, ``datetime``, labels as 0.0/1.0).

    Extra columns of the frame (scores, decisions...) follow the SKAB columns. Without
    ``header``, only the rows: to append a chunk to an open file.
    """
    out = frame.copy()
    out[TIMESTAMP] = pd.to_datetime(out[TIMESTAMP]).dt.strftime(DATETIME_FORMAT)
    for label in LABELS:
        if label in out:
            out[label] = out[label].astype("float64")
    first = [TIMESTAMP, *([EQUIPMENT_ID] if with_equipment else []), *SENSOR_NAMES]
    dropped = [] if with_equipment else [EQUIPMENT_ID]
    rest = [c for c in out.columns if c not in first and c not in dropped]
    out = out[first + rest].rename(columns={TIMESTAMP: DATETIME_COLUMN, **NAME_TO_CSV})
    if isinstance(target, (str, PathLike)):
        Path(target).parent.mkdir(parents=True, exist_ok=True)
    out.to_csv(target, sep=SEPARATOR, index=False, lineterminator="\r\n", header=header)
