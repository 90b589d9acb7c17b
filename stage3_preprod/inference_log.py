"""The inference log: every prediction appended to a CSV file, one file per UTC day.

    logs/inferences-2026-01-05.csv
    time;request_id;source;equipment_id;model_version;accelerometer1_rms;...;score;decision;latency_ms

One line per scored reading, whatever asked for it (``source``: api, batch_api, csv_api,
stream, batch_cli), with the request id a client can quote and the model version that
answered. The header is written once, when the day's file is created.

Several threads and several processes (uvicorn workers, a batch job) append to the same
file: each call takes an exclusive ``flock`` on it, writes the header if the file is still
empty, then all its lines with a single ``write`` and releases the lock, so that lines
are never interleaved or cut. POSIX only (``fcntl``), like the service's image.
"""

from __future__ import annotations

import contextlib
import csv
import fcntl
import io
import os
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd

from common.schema import EQUIPMENT_ID, SENSOR_NAMES

COLUMNS = (
    "time",
    "request_id",
    "source",
    "equipment_id",
    "model_version",
    *SENSOR_NAMES,
    "score",
    "decision",
    "latency_ms",
)
SEPARATOR = ";"
PATTERN = "inferences-*.csv"


class LogUnavailable(OSError):
    """The inference log cannot be written (read-only folder, full disk): the prediction is not answered."""


def log_path(directory: Path, when: datetime) -> Path:
    """The file of ``when``'s UTC day."""
    return Path(directory) / f"inferences-{when.astimezone(UTC):%Y-%m-%d}.csv"


def _lines(rows: Sequence[Sequence[object]]) -> str:
    buffer = io.StringIO()
    csv.writer(buffer, delimiter=SEPARATOR, lineterminator="\n").writerows(rows)
    return buffer.getvalue()


def _append(path: Path, text: str) -> None:
    """Append ``text`` (whole lines) under an exclusive lock, the header first if the file is empty.

    A write that fails half-way (disk full) is cut back to the previous end of the file,
    so that no partial line is left for the next append to run into.
    """
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        end = os.fstat(fd).st_size
        if end == 0:
            text = _lines([COLUMNS]) + text
        data = text.encode("utf-8")
        try:
            while data:
                data = data[os.write(fd, data) :]
        except OSError:
            os.ftruncate(fd, end)
            raise
    finally:
        os.close(fd)  # releases the lock


def record(
    directory: Path, source: str, request_id: str, scored: pd.DataFrame, latency_ms: float, when: datetime | None = None
) -> None:
    """Append one line per row of ``scored`` to the day's file.

    ``scored`` is a sensor frame with ``score``, ``decision`` and ``model_version``
    columns (``scoring.with_scores``). ``latency_ms`` is the duration of the call that
    produced these lines (a request, a stream message, a chunk of a batch job). Raises
    LogUnavailable (an OSError, French message) if the log cannot be written: a
    prediction that cannot be traced must not be answered as if it were.
    """
    if not len(scored):
        return
    numbers = scored[[*SENSOR_NAMES, "score"]].to_numpy(dtype="float64").tolist()
    rows = zip(
        scored[EQUIPMENT_ID].tolist(),
        scored["model_version"].tolist(),
        numbers,
        scored["decision"].tolist(),
        strict=True,
    )
    _write(directory, source, request_id, [(e, v, *n, d) for e, v, n, d in rows], latency_ms, when)


def record_reading(
    directory: Path,
    source: str,
    request_id: str,
    reading: Mapping[str, Any],
    result: Mapping[str, Any],
    latency_ms: float,
    when: datetime | None = None,
) -> None:
    """``record`` for one reading (its sensors and ``equipment_id``) and its result
    (``score``, ``decision``, ``model_version``): the same line, without a frame to build."""
    sensors = [float(reading[name]) for name in SENSOR_NAMES]
    row = (reading[EQUIPMENT_ID], result["model_version"], *sensors, float(result["score"]), result["decision"])
    _write(directory, source, request_id, [row], latency_ms, when)


def _write(
    directory: Path, source: str, request_id: str, rows: Sequence[tuple], latency_ms: float, when: datetime | None
) -> None:
    """Append ``rows`` (equipment, version, the sensors, score, decision), each with the call's time and latency."""
    when = when or datetime.now(UTC)
    stamp = when.astimezone(UTC).isoformat(timespec="milliseconds")
    latency = f"{latency_ms:.3f}"
    text = _lines([(stamp, request_id, source, *row, latency) for row in rows])
    path = log_path(Path(directory), when)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        _append(path, text)
    except OSError as exc:
        raise LogUnavailable(f"journal des inférences {path} impossible à écrire : {exc.strerror or exc}") from exc


def check_writable(directory: Path) -> None:
    """Write and remove one byte in ``directory`` (created if needed), as the log would.

    Raises LogUnavailable (French) if the folder is read-only or its disk is full: what
    ``GET /health`` reports, without waiting for a prediction to fail.
    """
    directory = Path(directory)
    probe = directory / f".sonde-ecriture-{os.getpid()}"
    try:
        directory.mkdir(parents=True, exist_ok=True)
        fd = os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            os.write(fd, b"1")
        finally:
            os.close(fd)
            with contextlib.suppress(OSError):
                os.unlink(probe)
    except OSError as exc:
        raise LogUnavailable(f"dossier {directory} impossible à écrire : {exc.strerror or exc}") from exc


def read_logs(directory: Path) -> pd.DataFrame:
    """Every line of the inference logs in ``directory``, oldest file first (empty frame if none)."""
    files = sorted(Path(directory).glob(PATTERN))
    if not files:
        return pd.DataFrame(columns=list(COLUMNS))
    frames = [pd.read_csv(f, sep=SEPARATOR, dtype={"request_id": str, "equipment_id": str}) for f in files]
    logs = pd.concat(frames, ignore_index=True)
    logs["time"] = pd.to_datetime(logs["time"], format="ISO8601", utc=True)
    return logs
