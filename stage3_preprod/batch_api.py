"""Many readings in one request: a JSON list (``POST /predict/batch``) or a CSV file (``POST /predict/csv``).

One result per reading, or why it was refused. Plain ``def``: scoring a series and writing its
log lines is blocking work, which FastAPI runs in its thread pool.
"""

from __future__ import annotations

import time
from typing import Annotated, Any

import numpy as np
import pandas as pd
from fastapi import APIRouter, Body, Depends, File, Request, UploadFile
from pydantic import ValidationError

from common.data import DataError
from common.json_body import JsonRoute
from common.messages import field_errors
from common.readings import TimedReadingList, readings_frame
from common.registry import LoadedModel
from common.schema import EQUIPMENT_ID, EXAMPLE_READING, TIMESTAMP

from . import scoring
from .deps import ModelDep, RequestId, require_json
from .errors import error_response
from .models import JSON_BODY_ERRORS, NOT_JSON, BatchResult, CsvResult, error_doc
from .monitoring import elapsed_ms, trace
from .pages import size

router = APIRouter(route_class=JsonRoute)  # a batch body read by a faster JSON parser (common.json_body)

BATCH_EXAMPLE = [EXAMPLE_READING, {**EXAMPLE_READING, "pressure": 150}]


def validate_batch(items: list[Any]) -> tuple[list[Any], list[int], dict[int, list[dict[str, str]]]]:
    """The valid readings with their positions, and the French errors of the others by position.

    One ``TypeAdapter(list[TimedReading])`` call; if some are refused, the others are read again.
    """
    try:
        return TimedReadingList.validate_python(items), list(range(len(items))), {}
    except ValidationError as exc:
        errors: dict[int, list[dict[str, Any]]] = {}
        for error in exc.errors():
            errors.setdefault(error["loc"][0], []).append(error)
    positions = [i for i in range(len(items)) if i not in errors]
    readings = TimedReadingList.validate_python([items[i] for i in positions])
    return readings, positions, {i: field_errors(e) for i, e in sorted(errors.items())}


def summary(model: LoadedModel, request_id: str, scored: pd.DataFrame, rejected: int) -> dict[str, Any]:
    """What the answers of a batch and of a file share: the model, the request and the counts."""
    anomalies = int((scored["decision"] == scoring.ANOMALY).sum())
    counts = {"scored": len(scored), "rejected": rejected, "anomalies": anomalies}
    return {"model_version": model.version, "threshold": model.model.threshold_, "request_id": request_id, **counts}


@router.post(
    "/predict/batch",
    summary="Analyser un lot de mesures",
    response_model=BatchResult,
    response_model_exclude_none=True,
    dependencies=[Depends(require_json)],
    responses={
        **JSON_BODY_ERRORS,
        413: error_doc("Trop de mesures dans le lot, ou corps trop volumineux."),
        **NOT_JSON,
        422: error_doc("Le corps n'est pas une liste JSON."),
        503: error_doc("Aucun modèle chargé."),
    },
)
def predict_batch(
    request: Request,
    items: Annotated[list[Any], Body(examples=[BATCH_EXAMPLE])],
    model: ModelDep,
    request_id: RequestId,
) -> Any:
    """Un résultat par mesure, dans l'ordre : score et décision, ou les erreurs qui la font refuser.

    Chaque mesure suit le format de `POST /predict` ; les valides sont notées comme une série, dans
    l'ordre reçu. Au-delà de `MAX_BATCH_ROWS` mesures (1 000 par défaut) : 413.
    """
    limit = request.app.state.settings.max_batch_rows
    if len(items) > limit:
        return error_response(
            request, 413, f"lot trop grand : {len(items)} mesures reçues, {limit} au plus par requête"
        )
    start = time.perf_counter()
    readings, positions, errors = validate_batch(items)
    frame = readings_frame(readings).set_axis(positions)
    scored = scoring.with_scores(frame, model.model.score(frame) if len(frame) else np.empty(0), model)
    trace(request.app.state, "api_batch", request_id, scored, elapsed_ms(start))
    # As lists: a pandas column is slow to iterate.
    columns = (scored[name].tolist() for name in ("score", "decision", EQUIPMENT_ID))
    results = [
        {"index": i, "score": s, "decision": d, "equipment_id": e}
        for i, s, d, e in zip(positions, *columns, strict=True)
    ]
    results += [{"index": i, "errors": e} for i, e in errors.items()]
    return BatchResult(
        **summary(model, request_id, scored, len(errors)),
        received=len(items),
        results=sorted(results, key=lambda r: r["index"]),
    )


@router.post(
    "/predict/csv",
    summary="Analyser un fichier CSV",
    response_model=CsvResult,
    responses={
        400: error_doc("Envoi multipart illisible (enveloppe cassée)."),
        413: error_doc("Fichier trop volumineux."),
        422: error_doc("Fichier inutilisable (vide, mauvais séparateur, colonne manquante, encodage)."),
        503: error_doc("Aucun modèle chargé."),
    },
)
def predict_csv(
    request: Request,
    fichier: Annotated[UploadFile, File(description="CSV au format SKAB (séparateur « ; », UTF-8).")],
    model: ModelDep,
    request_id: RequestId,
) -> Any:
    """Chaque ligne valide notée (après les précédentes de son équipement), chaque ligne rejetée avec sa raison.

    Un fichier vide, mal séparé, mal encodé ou sans une colonne est refusé (422).
    """
    limit = request.app.state.settings.max_upload_bytes
    data = fichier.file.read(limit + 1)
    name = fichier.filename or "sans nom"
    if len(data) > limit:
        return error_response(request, 413, f"fichier « {name} » trop volumineux : {size(limit)} au plus")
    start = time.perf_counter()
    try:
        chunks = list(scoring.score_chunks(model, data))
    except DataError as exc:
        return error_response(request, 422, f"fichier « {name} » refusé : {exc}")
    scored = pd.concat([c[0] for c in chunks])
    rejects = pd.concat([c[1] for c in chunks], ignore_index=True)
    trace(request.app.state, "api_csv", request_id, scored, elapsed_ms(start))
    rows = scored.assign(line=scored.index, timestamp=scored[TIMESTAMP].dt.strftime("%Y-%m-%d %H:%M:%S"))
    return CsvResult(
        **summary(model, request_id, scored, len(rejects)),
        filename=name,
        results=rows[["line", TIMESTAMP, EQUIPMENT_ID, "score", "decision"]].to_dict("records"),
        rejects=rejects.set_axis(["line", "reason", "content"], axis=1).to_dict("records"),
    )
