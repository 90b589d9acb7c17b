"""A reading of the pump's eight sensors, declared once as a pydantic model.

Types, finite numbers, plausible ranges (from ``common.schema.SENSORS``) and the refusal
of unknown fields are declared on the fields; pydantic-core's compiled validator checks
them, and ``common.messages`` words each refusal in French. Every stage validates a
reading with this model: a JSON body (strict: a number in quotes is refused), a batch
(``ReadingList``), or values typed by a person in the web form or on the command line
(``from_text``: a French decimal comma is accepted).

>>> Reading.model_validate(EXAMPLE_READING).voltage
230.0
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from itertools import chain
from operator import attrgetter
from typing import Annotated, Any

import numpy as np
import pandas as pd
from pydantic import AfterValidator, ConfigDict, Field, TypeAdapter, create_model

from common.schema import (
    DEFAULT_EQUIPMENT_ID,
    EQUIPMENT_ID,
    EQUIPMENT_ID_MAX_LENGTH,
    EXAMPLE_READING,
    SENSOR_NAMES,
    SENSORS,
    TIMESTAMP,
    Sensor,
)


def sensor_field(sensor: Sensor) -> Any:
    """A finite float within the sensor's plausible range, described for the reader of /docs."""
    return Annotated[
        float,
        Field(
            ge=sensor.low,
            le=sensor.high,
            allow_inf_nan=False,
            description=f"{sensor.label}, en {sensor.unit} (plage plausible : {sensor.low:g} à {sensor.high:g} {sensor.unit})",
            examples=[EXAMPLE_READING[sensor.name]],
        ),
    ]


Reading = create_model(
    "Reading",
    __config__=ConfigDict(
        extra="forbid",
        strict=True,  # JSON: "0.5" and true are not numbers; from_text relaxes this for typed text
        title="Mesure",
        json_schema_extra={"examples": [{**EXAMPLE_READING, EQUIPMENT_ID: DEFAULT_EQUIPMENT_ID}]},
    ),
    __doc__="Une mesure des huit capteurs de la pompe ; tout champ inconnu est refusé.",
    **{s.name: (sensor_field(s), ...) for s in SENSORS},
    equipment_id=(
        str,
        Field(
            DEFAULT_EQUIPMENT_ID,
            min_length=1,
            max_length=EQUIPMENT_ID_MAX_LENGTH,
            description="Identifiant de l'équipement",
        ),
    ),
)

ReadingList = TypeAdapter(list[Reading])  # a batch: one call, errors located by item index


def utc_naive(value: datetime | None) -> datetime | None:
    """A timestamp with a time zone, converted to UTC and kept without it (as in the CSV files)."""
    return value.astimezone(UTC).replace(tzinfo=None) if value and value.tzinfo else value


TimedReading = create_model(
    "TimedReading",
    __base__=Reading,
    __doc__="Une mesure des huit capteurs, datée ou non ; tout champ inconnu est refusé.",
    timestamp=(
        Annotated[datetime | None, AfterValidator(utc_naive)],
        # Not strict: the date arrives as ISO 8601 text, in JSON as in a parsed stream message.
        Field(
            None,
            strict=False,
            description="Date et heure de la mesure (ISO 8601, UTC si sans fuseau) ; par défaut : maintenant.",
        ),
    ),
)
"""A reading with the optional ``timestamp`` of stage 3's batches and stream (stages 1 and 2 refuse it)."""

TimedReadingList = TypeAdapter(list[TimedReading])


def from_text(typed: Mapping[str, str | None]) -> Any:
    """A reading typed by a person (web form, command line), validated by ``Reading``.

    Text is read as numbers (``"0,027"`` with a French decimal comma too); a blank is a
    missing value. Raises pydantic's ValidationError, which ``common.messages`` translates.
    """
    data: dict[str, Any] = {s.name: decimal_point(typed.get(s.name)) for s in SENSORS}
    equipment_id = (typed.get(EQUIPMENT_ID) or "").strip()
    if equipment_id:  # left blank: the default equipment
        data[EQUIPMENT_ID] = equipment_id
    return Reading.model_validate(data, strict=False)


def decimal_point(text: str | None) -> str | None:
    """Typed number text as Python reads it: blanks around removed, a French decimal comma made a point."""
    return None if text is None else text.strip().replace(",", ".")


_sensor_values = attrgetter(*SENSOR_NAMES)
FEW_READINGS = 64  # measured: up to about this many dates, numpy reads them faster than pandas


def readings_frame(readings: Sequence[Any]) -> pd.DataFrame:
    """The sensor frame of validated readings (``Reading`` or ``TimedReading``), for the model to score.

    The same frame as ``common.data.frame_from_readings([r.model_dump() for r in readings])``
    (a reading without ``timestamp`` is stamped now, tested equal), read from the models'
    attributes straight into arrays rather than through a dict per reading.
    """
    n = len(readings)
    now = np.datetime64(datetime.now(UTC).replace(tzinfo=None), "us")
    stamps = [getattr(r, TIMESTAMP, None) for r in readings]
    if all(t is None for t in stamps):
        times = np.full(n, now)
    elif n <= FEW_READINGS and all(type(t) is datetime and t.tzinfo is None for t in stamps):
        times = np.array(stamps, dtype="datetime64[us]")  # pandas' parser costs more for a few
    else:
        times = pd.to_datetime([now if t is None else t for t in stamps]).as_unit("us").to_numpy()
    width = len(SENSOR_NAMES)
    values = np.fromiter(chain.from_iterable(map(_sensor_values, readings)), "float64", n * width).reshape(n, width)
    columns: dict[str, Any] = {
        TIMESTAMP: times,
        EQUIPMENT_ID: np.array([r.equipment_id for r in readings], dtype=object),
    }
    for i, name in enumerate(SENSOR_NAMES):
        columns[name] = values[:, i]
    return pd.DataFrame(columns, copy=False)
