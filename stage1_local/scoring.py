"""Score readings and files with a registered model: what the CLI and the web form share."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pandas as pd

from common.data import Source, load_csv
from common.decision import ANOMALY, decide, decide_all
from common.readings import Reading
from common.registry import LoadedModel, load
from common.schema import DEFAULT_EQUIPMENT_ID

from .settings import Settings


def load_model(settings: Settings) -> LoadedModel:
    """The model version the settings name (the latest if none), sha256 checked."""
    loaded = load(settings.model_version, settings.models_dir)
    loaded.model.warm_up()  # the forest for large files, ready in the background (scikit-learn import)
    return loaded


def score_reading(loaded: LoadedModel, reading: Reading | Mapping[str, Any]) -> dict[str, Any]:
    """Score one reading alone: a ``Reading``, or snake_case keys validated into one.

    Returns score, decision ("Normal" or "Anomalie"), threshold and model version.
    Raises pydantic's ValidationError (``common.messages`` words it) for an invalid reading.
    """
    score = loaded.model.score_reading(dict(Reading.model_validate(reading)))
    return {
        "score": score,
        "decision": decide(score, loaded.model.threshold_),
        "threshold": loaded.model.threshold_,
        "model_version": loaded.version,
    }


def score_file(loaded: LoadedModel, source: Source, equipment_id: str = DEFAULT_EQUIPMENT_ID) -> pd.DataFrame:
    """Load a SKAB-format CSV and add ``score`` and ``decision`` to every row.

    Raises common.data.DataError (French message) if the file cannot be used.
    """
    frame = load_csv(source, equipment_id=equipment_id)
    scores = loaded.model.score(frame)
    frame["score"] = scores
    frame["decision"] = decide_all(scores, loaded.model.threshold_)
    return frame


def summary(scored: pd.DataFrame, loaded: LoadedModel) -> str:
    """A French summary of a scored file: how many readings, how many alarms, when."""
    alarms = scored[scored["decision"] == ANOMALY]
    n, k = len(scored), len(alarms)
    lines = [f"{n} mesures analysées avec le modèle {loaded.version} : {k} anomalie(s) ({100 * k / n:.1f} %)."]
    if k:
        first, last = alarms["timestamp"].min(), alarms["timestamp"].max()
        lines.append(f"Première anomalie : {first}, dernière : {last}.")
        top = alarms.nlargest(1, "score").iloc[0]
        lines.append(
            f"Score le plus élevé : {top['score']:.3f} le {top['timestamp']} (seuil d'alarme {loaded.model.threshold_:.3f})."
        )
    return "\n".join(lines)
