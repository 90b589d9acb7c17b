"""The SKAB-format loader: what it accepts and every error a person can cause."""

from __future__ import annotations

import io

import numpy as np
import pandas as pd
import pytest

from common.data import (
    FLOAT_TEXTS_MIN_COLUMN,
    DataError,
    float_texts,
    frame_from_readings,
    load_csv,
    write_csv,
)
from common.schema import EXAMPLE_READING, SENSOR_NAMES
from tests.support import skab_folder

HEADER = (
    "datetime;Accelerometer1RMS;Accelerometer2RMS;Current;Pressure;Temperature;Thermocouple;Voltage;Volume Flow RateRMS"
)
ROW = "0.0265878;0.0401113;1.3302;0.054711;79.3366;26.0199;233.062;32.0"


def skab(*rows: str, header: str = HEADER, sep: str = ";") -> bytes:
    lines = [header.replace(";", sep), *rows]
    return ("\r\n".join(lines) + "\r\n").encode()


def test_reads_skab_format_with_labels():
    data = skab(
        "2020-03-09 10:14:33;" + ROW + ";0.0;0.0",
        "2020-03-09 10:14:34;" + ROW + ";1.0;1.0",
        header=HEADER + ";anomaly;changepoint",
    )
    frame = load_csv(data, equipment_id="p7")
    assert list(frame.columns) == ["timestamp", "equipment_id", *SENSOR_NAMES, "anomaly", "changepoint"]
    assert frame["anomaly"].tolist() == [0, 1]
    assert frame["current"].iloc[0] == 1.3302
    assert (frame["equipment_id"] == "p7").all()
    assert frame["timestamp"].iloc[1] == pd.Timestamp("2020-03-09 10:14:34")


def test_reads_a_real_skab_file():
    frame = load_csv(skab_folder("valve1") / "0.csv")
    assert len(frame) > 1000 and frame["anomaly"].sum() > 0


def test_write_then_load_round_trips_exactly(tmp_path):
    frame = frame_from_readings([EXAMPLE_READING, {**EXAMPLE_READING, "current": 1.3333333333333333}])
    frame["timestamp"] = pd.to_datetime(["2026-01-01 00:00:00", "2026-01-01 00:00:01"])
    write_csv(frame, tmp_path / "f.csv")
    raw = (tmp_path / "f.csv").read_bytes()
    assert raw.startswith(b"datetime;Accelerometer1RMS;") and b"\r\n" in raw
    back = load_csv(tmp_path / "f.csv")
    assert np.array_equal(back[list(SENSOR_NAMES)].to_numpy(), frame[list(SENSOR_NAMES)].to_numpy())


def test_equipment_column_separates_time_orders():
    header = "datetime;equipment_id;" + HEADER.split(";", 1)[1]
    data = skab(
        "2020-03-09 10:00:01;a;" + ROW,
        "2020-03-09 10:00:00;b;" + ROW,  # earlier, but another equipment: fine
        "2020-03-09 10:00:02;a;" + ROW,
        header=header,
    )
    assert load_csv(data)["equipment_id"].tolist() == ["a", "b", "a"]


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (b"", "fichier vide"),
        (skab(), "aucune mesure"),
        (skab("2020-03-09 10:14:33," + ROW.replace(";", ","), sep=","), "séparateur incorrect"),
        (skab("2020-03-09 10:14:33\t" + ROW.replace(";", "\t"), sep="\t"), "séparateur incorrect"),
        (skab("2020-03-09 10:14:33;" + ROW, header=HEADER.replace(";Current", ";Courant")), "« Current »"),
        (skab("2020-03-09 10:14:33;" + ROW, header=HEADER.replace("datetime", "date")), "« datetime »"),
        (skab("2020-03-09 10:14:33;" + ROW.replace("1.3302", "abc")), "ligne 2, colonne « Current » : « abc »"),
        (skab("2020-03-09 10:14:33;" + ROW.replace("1.3302", "1,33")), "« 1,33 » n'est pas un nombre"),
        (skab("hier;" + ROW), "date « hier » illisible"),
        (
            skab("2020-03-09 10:14:33;" + ROW, "2020-03-09 10:14:33;" + ROW),
            "ligne 3 : horodatage 2020-03-09 10:14:33 dupliqué",
        ),
        (skab("2020-03-09 10:14:33;" + ROW, "2020-03-09 10:14:32;" + ROW), "antérieur"),
        (
            skab("2020-03-09 10:14:33;" + ROW.replace("233.062", "9000")),
            "ligne 2 : voltage : 9000 V est hors de la plage",
        ),
        (skab("2020-03-09 10:14:33;" + ROW.replace("233.062", "")), "voltage : valeur manquante"),
        (skab("2020-03-09 10:14:33;" + ROW.replace("233.062", "inf")), "voltage : valeur infinie"),
        ("datetime;é\r\n".encode("latin-1"), "UTF-8"),
    ],
)
def test_every_file_error_is_explained_in_french(data, expected):
    with pytest.raises(DataError) as err:
        load_csv(io.BytesIO(data))
    assert expected in str(err.value)


def test_error_names_the_column_and_line():
    with pytest.raises(DataError) as err:
        load_csv(skab("2020-03-09 10:14:33;" + ROW, "2020-03-09 10:14:34;" + ROW.replace("32.0", "x")))
    assert err.value.column == "Volume Flow RateRMS" and err.value.line == 3


def test_validation_can_be_left_to_the_caller():
    frame = load_csv(skab("2020-03-09 10:14:33;" + ROW.replace("233.062", "9000")), validate=False)
    assert frame["voltage"].iloc[0] == 9000


def test_float_texts_are_repr_on_a_million_values():
    rng = np.random.default_rng(0)
    edges = [np.nextafter(e, direction) for e in (1e-4, 1e16, 0.0, 1.0) for direction in (-np.inf, np.inf)]
    values = np.concatenate(
        [
            rng.random(300_000) * 10.0 ** rng.integers(-8, 20, 300_000),
            rng.normal(size=200_000) * 1e3,
            np.round(rng.random(100_000) * 1000, 3),
            rng.integers(0, 2**63, 400_000, dtype=np.int64).view(np.float64),  # any bit pattern, NaN included
            [1e-4, 1e16, -0.0, 0.0, 1e-7, 0.1 + 0.2, 2.0**53 + 1, 5e-324, np.inf, -np.inf, *edges],
        ]
    ).tolist()
    assert float_texts(values) == list(map(repr, values))
    assert float_texts([]) == []
    for n in (1, FLOAT_TEXTS_MIN_COLUMN - 1, FLOAT_TEXTS_MIN_COLUMN):  # both sides of the short-column path
        assert float_texts(values[-n:]) == list(map(repr, values[-n:]))
