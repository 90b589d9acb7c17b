"""The inference log: every prediction appended to a CSV file, one file per UTC day.

    logs/inferences-2026-01-05.csv: time;request_id;source;equipment_id;model_version;<sensors>;score;decision;latency_ms

Workers and batch jobs append to the same file: ``common.shared_file`` locks each append.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd

from common import shared_file
from common.fast_text import csv_lines
from common.schema import EQUIPMENT_ID, SENSOR_NAMES

CALL = ("time", "request_id", "source", EQUIPMENT_ID, "model_version")  # when, who asked, which model answered
COLUMNS = (*CALL, *SENSOR_NAMES, "score", "decision", "latency_ms")
SEPARATOR = ";"
PATTERN = "inferences-*.csv"


class LogUnavailable(OSError):
    """The inference log cannot be written (read-only folder, full disk): the prediction is not answered."""


def log_path(directory: Path, when: datetime) -> Path:
    """The file of ``when``'s UTC day."""
    return Path(directory) / f"inferences-{when.astimezone(UTC):%Y-%m-%d}.csv"


def record(
    directory: Path, source: str, request_id: str, scored: pd.DataFrame, latency_ms: float, when: datetime | None = None
) -> None:
    """Append one line per row of ``scored`` (``scoring.with_scores``), ``latency_ms`` being the call's duration.

    Raises LogUnavailable (French): a prediction that cannot be traced must not be answered."""
    numbers = scored[[*SENSOR_NAMES, "score"]].to_numpy(dtype="float64").tolist()
    columns = (scored[EQUIPMENT_ID].tolist(), scored["model_version"].tolist(), numbers, scored["decision"].tolist())
    rows = [(e, v, *n, d) for e, v, n, d in zip(*columns, strict=True)]
    _write(directory, source, request_id, rows, latency_ms, when)


def record_reading(
    directory: Path,
    source: str,
    request_id: str,
    reading: Mapping[str, Any],
    result: Mapping[str, Any],
    latency_ms: float,
    when: datetime | None = None,
) -> None:
    """``record`` for one reading and its ``scoring.score_reading`` result, without a frame to build."""
    sensors = [float(reading[name]) for name in SENSOR_NAMES]
    row = (reading[EQUIPMENT_ID], result["model_version"], *sensors, float(result["score"]), result["decision"])
    _write(directory, source, request_id, [row], latency_ms, when)


def _write(directory: Path, source: str, request_id: str, rows: list, latency_ms: float, when: datetime | None) -> None:
    if not rows:
        return
    when = when or datetime.now(UTC)
    stamp, latency = when.astimezone(UTC).isoformat(timespec="milliseconds"), f"{latency_ms:.3f}"
    text = csv_lines([(stamp, request_id, source, *row, latency) for row in rows], SEPARATOR)  # csv.writer's text
    path = log_path(directory, when)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        shared_file.append_lines(path, text, csv_lines([COLUMNS], SEPARATOR))
    except OSError as exc:
        raise LogUnavailable(f"journal des inférences {path} impossible à écrire : {exc.strerror or exc}") from exc


def check_writable(directory: Path) -> None:
    """Raise LogUnavailable (French) if ``directory`` is read-only or its disk full, as ``GET /health`` reports."""
    try:
        shared_file.check_writable(directory)
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
