"""The one translator of pydantic's refusals: French, naming the field, the same words everywhere."""

from __future__ import annotations

import math

import pandas as pd
import pytest
from pydantic import ValidationError

from common.messages import field_errors, first_error
from common.readings import Reading, ReadingList, from_text
from common.schema import EXAMPLE_READING, SENSORS, invalid_rows

TYPED = {k: str(v) for k, v in EXAMPLE_READING.items()}


def refusals(data, **kwargs) -> list[dict[str, str]]:
    with pytest.raises(ValidationError) as error:
        Reading.model_validate(data, **kwargs)
    return field_errors(error.value.errors())


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        (None, "valeur manquante"),
        (math.nan, "valeur manquante (NaN)"),
        (math.inf, "valeur infinie refusée"),
        (-math.inf, "valeur infinie refusée"),
        ("230", "« 230 » n'est pas un nombre (un nombre JSON s'écrit sans guillemets)"),
        (True, "« True » n'est pas un nombre"),
        ([230], "« [230] » n'est pas un nombre"),
        (9000, "9000 V est hors de la plage plausible [0, 500] V"),
        (-0.5, "-0.5 V est hors de la plage plausible [0, 500] V"),
        (1e308, "1e+308 V est hors de la plage plausible [0, 500] V"),
        (10**400, "nombre trop grand, hors de la plage plausible [0, 500] V"),
        (-(10**400), "nombre trop petit, hors de la plage plausible [0, 500] V"),
    ],
)
def test_a_json_sensor_value_is_refused_in_french_naming_the_field(value, reason):
    assert refusals({**EXAMPLE_READING, "voltage": value}) == [
        {"field": "voltage", "message": f"Tension (voltage) : {reason}"}
    ]


@pytest.mark.parametrize("value", [math.inf, -math.inf, 9000, -1.0, 1e308])
def test_a_csv_file_and_a_json_reading_are_refused_in_the_same_words(value):
    """A file's rows are checked column by column (``invalid_rows``): same reason as the model's translator."""
    [translated] = refusals({**EXAMPLE_READING, "voltage": value})
    [by_column] = invalid_rows(pd.DataFrame([{**EXAMPLE_READING, "voltage": value}])).tolist()
    assert translated["message"] == f"Tension (voltage) : {by_column.removeprefix('voltage : ')}"


def test_missing_unknown_and_badly_typed_fields_are_named():
    reading = {k: v for k, v in EXAMPLE_READING.items() if k != "current"}
    errors = refusals({**reading, "courant": 1.0, "equipment_id": 12})
    assert errors == [
        {"field": "current", "message": "Courant moteur (current) : valeur manquante"},
        {"field": "equipment_id", "message": "Identifiant de l'équipement (equipment_id) : texte attendu, reçu 12"},
        {
            "field": "courant",
            "message": "courant : champ inconnu (vérifiez l'orthographe ; voir /docs pour la liste des champs)",
        },
    ]
    assert str(first_error([{"type": "missing", "loc": ("current",)}])) == "current : valeur manquante"


@pytest.mark.parametrize(
    ("typed", "reason"),
    [
        ("abc", "« abc » n'est pas un nombre"),
        ("", "valeur manquante"),
        ("   ", "valeur manquante"),
        ("nan", "valeur manquante (NaN)"),
        ("-infinity", "valeur infinie refusée"),
        ("1e400", "valeur infinie refusée"),
        (str(10**400), "valeur infinie refusée"),
        ("9000,5", "9000.5 V est hors de la plage plausible [0, 500] V"),
    ],
)
def test_typed_text_is_refused_with_the_same_words(typed, reason):
    with pytest.raises(ValidationError) as error:
        from_text({**TYPED, "voltage": typed})
    assert field_errors(error.value.errors()) == [{"field": "voltage", "message": f"Tension (voltage) : {reason}"}]


def test_typed_text_accepts_a_decimal_comma_and_a_blank_equipment():
    reading = from_text({**TYPED, "current": " 1,2 ", "equipment_id": "  "})
    assert reading.current == 1.2 and reading.equipment_id == "pompe-01"
    with pytest.raises(ValidationError) as error:
        from_text({**TYPED, "equipment_id": "p" * 65})
    assert field_errors(error.value.errors())[0]["message"] == (
        "Identifiant de l'équipement (equipment_id) : 64 caractères au plus"
    )


def test_the_model_declares_every_sensor_range_for_the_openapi():
    properties = Reading.model_json_schema()["properties"]
    for s in SENSORS:
        assert (properties[s.name]["minimum"], properties[s.name]["maximum"]) == (s.low, s.high)


def test_a_batch_is_validated_in_one_call_with_errors_located_by_item():
    with pytest.raises(ValidationError) as error:
        ReadingList.validate_python([EXAMPLE_READING, "texte", {**EXAMPLE_READING, "pressure": 150}])
    located = [
        (e["loc"][0], f["message"])
        for e, f in zip(error.value.errors(), field_errors(error.value.errors()), strict=True)
    ]
    assert located == [
        (1, 'body : un objet JSON est attendu, reçu "texte"'),
        (2, "Pression (pressure) : 150 bar est hors de la plage plausible [-2, 100] bar"),
    ]


@pytest.mark.parametrize(
    ("error", "message"),
    [
        (
            {"type": "json_invalid", "loc": ("body", 12), "ctx": {"error": "Expecting value"}},
            "body : JSON mal formé (valeur attendue, caractère 12)",
        ),
        ({"type": "missing", "loc": ("body",)}, "body : corps de requête manquant : une mesure en JSON est attendue"),
        (
            {"type": "model_attributes_type", "loc": ("body",), "input": [1, 2]},
            "body : un objet JSON est attendu, reçu [1, 2]",
        ),
    ],
)
def test_errors_about_the_whole_body_name_it(error, message):
    assert field_errors([error]) == [{"field": "body", "message": message}]


def test_a_json_syntax_error_without_a_position_is_worded_too():
    """pydantic's own JSON parser (``model_validate_json``) reports no position: still a French message, no crash."""
    with pytest.raises(ValidationError) as error:
        Reading.model_validate_json("{")
    [refusal] = field_errors(error.value.errors())
    assert refusal["field"] == "body" and refusal["message"].startswith("body : JSON mal formé (")
