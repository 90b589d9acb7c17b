"""Sensor schema of the pump bench: names, units, plausible ranges.

The eight channels follow SKAB (a real water-pump test bench). CSV files use the
SKAB spellings (``Accelerometer1RMS``...); JSON and Python code use snake_case
(``accelerometer1_rms``...). Every refusal names the field in French, so that a
person reading the message knows which value to fix.

A reading is validated by the pydantic model ``common.readings.Reading`` and its
refusals are worded by ``common.messages``; ``invalid_rows`` checks whole CSV files
column by column, in the same words.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd


@dataclass(frozen=True)
class Sensor:
    """One channel of the bench: its names, unit and physically plausible range."""

    name: str  # snake_case, used in JSON and in code
    csv_name: str  # spelling in SKAB CSV files
    unit: str
    low: float
    high: float
    label: str  # French label shown to people


SENSORS: tuple[Sensor, ...] = (
    Sensor("accelerometer1_rms", "Accelerometer1RMS", "g", 0.0, 50.0, "Vibration accéléromètre 1 (RMS)"),
    Sensor("accelerometer2_rms", "Accelerometer2RMS", "g", 0.0, 50.0, "Vibration accéléromètre 2 (RMS)"),
    Sensor("current", "Current", "A", 0.0, 100.0, "Courant moteur"),
    # Gauge pressure: slightly below -1 bar is possible with a sensor offset (SKAB shows -1.26).
    Sensor("pressure", "Pressure", "bar", -2.0, 100.0, "Pression"),
    Sensor("temperature", "Temperature", "°C", -40.0, 200.0, "Température moteur"),
    Sensor("thermocouple", "Thermocouple", "°C", -40.0, 200.0, "Température du fluide"),
    Sensor("voltage", "Voltage", "V", 0.0, 500.0, "Tension"),
    Sensor("volume_flow_rate_rms", "Volume Flow RateRMS", "L/min", 0.0, 1000.0, "Débit volumique (RMS)"),
)

SENSOR_NAMES: tuple[str, ...] = tuple(s.name for s in SENSORS)
CSV_TO_NAME: dict[str, str] = {s.csv_name: s.name for s in SENSORS}
NAME_TO_CSV: dict[str, str] = {s.name: s.csv_name for s in SENSORS}
BY_NAME: dict[str, Sensor] = {s.name: s for s in SENSORS}

TIMESTAMP = "timestamp"
EQUIPMENT_ID = "equipment_id"
LABELS = ("anomaly", "changepoint")
DEFAULT_EQUIPMENT_ID = "pompe-01"
EQUIPMENT_ID_MAX_LENGTH = 64

# A normal reading of the bench (values close to SKAB's anomaly-free file).
EXAMPLE_READING: dict[str, float] = {
    "accelerometer1_rms": 0.027,
    "accelerometer2_rms": 0.040,
    "current": 1.2,
    "pressure": 0.055,
    "temperature": 71.0,
    "thermocouple": 25.4,
    "voltage": 230.0,
    "volume_flow_rate_rms": 32.0,
}


class ValidationError(ValueError):
    """A value a person sent is not acceptable; ``field`` names it, the message is French."""

    def __init__(self, field: str, message: str):
        super().__init__(f"{field} : {message}")
        self.field = field
        self.message = message


def _fmt(x: float) -> str:
    return f"{x:g}"


def invalid_rows(frame: pd.DataFrame) -> pd.Series:
    """Reason (French, naming the field) each row is invalid, indexed like ``frame``.

    Rows that pass every check are absent from the result. Vectorised: used on
    whole files and chunks, where checking row by row would be far too slow.
    """
    reasons = pd.Series(pd.NA, index=frame.index, dtype="object")
    for sensor in reversed(SENSORS):  # reversed: the first failing field wins
        col = frame[sensor.name]
        numeric = pd.to_numeric(col, errors="coerce").astype("float64")
        not_number = numeric.isna() & col.notna()
        missing = col.isna()
        infinite = np.isinf(numeric)
        out = ~(numeric.between(sensor.low, sensor.high)) & ~numeric.isna() & ~infinite
        rng = f"[{_fmt(sensor.low)}, {_fmt(sensor.high)}] {sensor.unit}"
        reasons[out] = [
            f"{sensor.name} : {_fmt(v)} {sensor.unit} est hors de la plage plausible {rng}" for v in numeric[out]
        ]
        reasons[infinite] = f"{sensor.name} : valeur infinie refusée"
        reasons[missing] = f"{sensor.name} : valeur manquante"
        reasons[not_number] = [f"{sensor.name} : « {v} » n'est pas un nombre" for v in col[not_number]]
    return reasons.dropna()
