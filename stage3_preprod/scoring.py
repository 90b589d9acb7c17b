"""Score readings and files with a registered model: what the CLI and the web form share.

Stage 3 adds files scored chunk by chunk (``score_chunks``), as the whole series would be.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping
from typing import Any

import numpy as np
import pandas as pd

from common.data import DEFAULT_CHUNK_ROWS, Source, load_csv, read_chunks
from common.decision import ANOMALY, decide, decide_all
from common.incremental import IncrementalScorer
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
    return result(loaded, loaded.model.score_reading(dict(Reading.model_validate(reading))))


def result(loaded: LoadedModel, score: float) -> dict[str, Any]:
    """What a scored reading's answer says: score, decision, threshold and model version."""
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


def with_scores(frame: pd.DataFrame, scores: np.ndarray, loaded: LoadedModel) -> pd.DataFrame:
    """``frame`` with the columns ``score``, ``decision`` and ``model_version`` added."""
    decisions = decide_all(scores, loaded.model.threshold_)
    return frame.assign(score=scores, decision=decisions, model_version=loaded.version)


def score_chunks(
    loaded: LoadedModel,
    source: Source,
    chunk_rows: int = DEFAULT_CHUNK_ROWS,
    equipment_id: str = DEFAULT_EQUIPMENT_ID,
) -> Iterator[tuple[pd.DataFrame, pd.DataFrame, float]]:
    """Read and score a SKAB-format CSV chunk by chunk, in bounded memory; DataError if it cannot be used.

    Yields ``(valid rows with_scores, rejected rows, latency_ms)`` per chunk (``common.data.read_chunks``)."""
    scorer = IncrementalScorer(loaded.model)
    for valid, rejects in read_chunks(source, chunk_rows, equipment_id):
        start = time.perf_counter()
        scores = scorer.score(valid) if len(valid) else np.empty(0)
        yield with_scores(valid, scores, loaded), rejects, (time.perf_counter() - start) * 1000


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
