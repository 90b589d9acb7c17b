"""French messages for what pydantic refuses: one translator for every stage, the form and the CLI.

Pydantic reports each problem as an error type (``float_type``, ``less_than_equal``...),
the location of the field, the input and a context (``{"le": 500.0}``). This module turns
that into a sentence a person reads, naming the field, so that the API, the web form and
the command line word the same mistake the same way:

>>> from pydantic import ValidationError
>>> from common.readings import Reading
>>> from common.schema import EXAMPLE_READING
>>> try:
...     Reading.model_validate({**EXAMPLE_READING, "voltage": 9000})
... except ValidationError as exc:
...     field_errors(exc.errors())
[{'field': 'voltage', 'message': 'Tension (voltage) : 9000 V est hors de la plage plausible [0, 500] V'}]
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping
from typing import Any

from common.schema import BY_NAME, EQUIPMENT_ID, SENSORS, ValidationError

# The French label of each field a person fills in; a message names the field by label and name.
LABELS: dict[str, str] = {**{s.name: s.label for s in SENSORS}, EQUIPMENT_ID: "Identifiant de l'équipement"}

# What the json module says (in English) about a syntax error, as a French reader needs it.
JSON_SYNTAX = {
    "Expecting value": "valeur attendue",
    "Expecting ',' delimiter": "virgule attendue",
    "Expecting ':' delimiter": "deux-points attendus",
    "Expecting property name enclosed in double quotes": "nom de champ entre guillemets attendu",
    "Extra data": "texte en trop après le JSON",
    "Unterminated string starting at": "texte entre guillemets jamais fermé",
    "Invalid control character at": "caractère de contrôle interdit dans un texte",
    "Invalid \\escape": "séquence d'échappement invalide",
    "Illegal trailing comma before end of object": "virgule en trop avant la fin de l'objet",
    "Illegal trailing comma before end of array": "virgule en trop avant la fin de la liste",
}


def shown(value: Any) -> str:
    """A received value as the client wrote it in JSON (``"0.5"``, ``true``, ``null``), at most 80 characters."""
    text = f"{value:g}" if isinstance(value, float) else json.dumps(value, ensure_ascii=False, default=str)
    return text[:80]


def plausible_range(name: str) -> str:
    sensor = BY_NAME[name]
    return f"[{sensor.low:g}, {sensor.high:g}] {sensor.unit}"


def sensor_reason(name: str, kind: str, value: Any) -> str:
    """Why a sensor value is refused: missing, not a number, NaN, infinite or out of range."""
    if kind == "missing" or value is None or (kind == "float_parsing" and not str(value).strip()):
        return "valeur manquante"
    if kind in ("float_type", "float_parsing"):
        if isinstance(value, int) and not isinstance(value, bool):  # an integer beyond every float (10**400)
            return (
                f"nombre trop {'grand' if value > 0 else 'petit'}, hors de la plage plausible {plausible_range(name)}"
            )
        quoted = " (un nombre JSON s'écrit sans guillemets)" if kind == "float_type" and isinstance(value, str) else ""
        return f"« {value} » n'est pas un nombre{quoted}"
    if kind == "finite_number":
        return "valeur manquante (NaN)" if math.isnan(float(value)) else "valeur infinie refusée"
    if kind in ("greater_than_equal", "less_than_equal"):
        return f"{float(value):g} {BY_NAME[name].unit} est hors de la plage plausible {plausible_range(name)}"
    return f"valeur refusée ({kind})"


def reason(error: Mapping[str, Any], name: str) -> str:
    """Why pydantic refused the field ``name``, in French, from the error's type, input and context."""
    kind, value, ctx = error["type"], error.get("input"), error.get("ctx") or {}
    if name in BY_NAME:
        return sensor_reason(name, kind, value)
    if kind == "json_invalid":
        problem = JSON_SYNTAX.get(str(ctx.get("error", "")), "erreur de syntaxe")
        where = error["loc"][-1:]  # FastAPI gives the character's position; pydantic's own parser none
        return f"JSON mal formé ({problem}, caractère {where[0]})" if where else f"JSON mal formé ({problem})"
    if kind == "missing":
        return (
            "corps de requête manquant : une mesure en JSON est attendue"
            if name == "body"
            else "champ obligatoire manquant"
        )
    texts = {
        "extra_forbidden": "champ inconnu (vérifiez l'orthographe ; voir /docs pour la liste des champs)",
        "list_type": f"une liste JSON de mesures est attendue, reçu {shown(value)}",
        "model_type": f"un objet JSON est attendu, reçu {shown(value)}",
        "model_attributes_type": f"un objet JSON est attendu, reçu {shown(value)}",
        "dict_type": f"un objet JSON est attendu, reçu {shown(value)}",
        "string_type": f"texte attendu, reçu {shown(value)}",
        "string_too_long": f"{ctx.get('max_length')} caractères au plus",
        "string_too_short": f"au moins {ctx.get('min_length')} caractère(s)",
        "int_parsing": f"« {value} » n'est pas un nombre entier",
        "int_type": f"nombre entier attendu, reçu {shown(value)}",
        "greater_than_equal": f"{value} refusé : {ctx.get('ge')} au moins",
        "less_than_equal": f"{value} refusé : {ctx.get('le')} au plus",
        "bool_parsing": f"« {value} » n'est ni vrai ni faux (true, false, 1, 0)",
    }
    if kind.startswith("datetime"):
        return f"date « {shown(value)} » illisible (attendu AAAA-MM-JJThh:mm:ss, ISO 8601)"
    return texts.get(kind, f"valeur refusée ({kind})")


def field_name(loc: Iterable[Any]) -> str:
    """The field an error is about, ``body`` for the whole request: ``("body", "voltage")`` -> ``voltage``.

    List positions are left out (a batch's errors are grouped by item elsewhere).
    """
    path = [str(p) for p in loc if not isinstance(p, int)]
    if path[:1] == ["body"]:
        path = path[1:]
    return ".".join(path) or "body"


def field_error(error: Mapping[str, Any]) -> dict[str, str]:
    """One pydantic error as ``{"field", "message"}``; the message names the field by its label if it has one."""
    name = field_name(error["loc"])
    label = LABELS.get(name)
    return {
        "field": name,
        "message": f"{label} ({name}) : {reason(error, name)}" if label else f"{name} : {reason(error, name)}",
    }


def field_errors(errors: Iterable[Mapping[str, Any]]) -> list[dict[str, str]]:
    """Every error of a pydantic ``ValidationError`` (``exc.errors()``), translated, in order."""
    return [field_error(e) for e in errors]


def first_error(errors: Iterable[Mapping[str, Any]]) -> ValidationError:
    """The first error as ``common.schema.ValidationError`` (``str``: ``"voltage : ..."``), for a command line.

    An unknown field comes first: a misspelled name explains the "missing" error that comes with it.
    """
    ordered = sorted(errors, key=lambda e: e["type"] != "extra_forbidden")
    name = field_name(ordered[0]["loc"])
    return ValidationError(name, reason(ordered[0], name))
