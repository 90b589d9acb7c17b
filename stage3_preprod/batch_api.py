"""Many readings in one request: a JSON list (``POST /predict/batch``) or a CSV file (``POST /predict/csv``).

Each answers one result per reading, or why it was refused: one bad reading does not stop
the others. The endpoints are plain ``def``: they score a whole series and write its lines
to the inference log, blocking work that FastAPI runs in its thread pool.
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
from common.schema import EQUIPMENT_ID, EXAMPLE_READING, TIMESTAMP

from . import scoring
from .deps import ModelDep, RequestId, require_json
from .errors import error_response
from .models import BatchResult, CsvResult, error_doc
from .monitoring import elapsed_ms, trace
from .pages import size

router = APIRouter(route_class=JsonRoute)  # a batch body read by a faster JSON parser (common.json_body)

BATCH_EXAMPLE = [EXAMPLE_READING, {**EXAMPLE_READING, "pressure": 150}]


def validate_batch(items: list[Any]) -> tuple[list[Any], list[int], dict[int, list[dict[str, str]]]]:
    """The valid readings of a batch with their positions, and the French errors of the others by position.

    The whole list is validated by one ``TypeAdapter(list[TimedReading])``; its errors
    name the position of each refused reading, and the others are then read again, all valid.
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


@router.post(
    "/predict/batch",
    summary="Analyser un lot de mesures",
    response_model=BatchResult,
    response_model_exclude_none=True,
    dependencies=[Depends(require_json)],
    responses={
        400: error_doc("Corps illisible : le JSON n'est pas un texte UTF-8."),
        413: error_doc("Trop de mesures dans le lot, ou corps trop volumineux."),
        415: error_doc("Le corps n'est pas déclaré comme JSON."),
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
    """Un résultat par mesure, dans l'ordre de la liste : score et décision, ou les erreurs qui la font refuser.

    Chaque mesure suit le format de `POST /predict`. Les mesures valides sont notées comme une
    série, dans l'ordre reçu (par équipement) ; une mesure refusée n'empêche pas les autres
    d'être notées (statut 200). Au-delà de `MAX_BATCH_ROWS` mesures (1 000 par défaut) : 413.
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
        model_version=model.version,
        threshold=model.model.threshold_,
        request_id=request_id,
        received=len(items),
        scored=len(scored),
        rejected=len(errors),
        anomalies=int((scored["decision"] == scoring.ANOMALY).sum()),
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
    """Chaque ligne valide notée (dans le contexte des précédentes de son équipement), chaque ligne rejetée avec sa raison.

    Les erreurs qui touchent tout le fichier (vide, séparateur, colonne manquante, encodage) le
    font refuser (422) ; une ligne invalide (valeur non numérique, hors plage ou manquante, date
    illisible, horodatage non croissant) est rejetée avec son numéro et la raison, les autres
    sont notées.
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
    stamps = scored[TIMESTAMP].dt.strftime("%Y-%m-%d %H:%M:%S")
    columns = (scored.index, stamps, scored[EQUIPMENT_ID], scored["score"], scored["decision"])
    return CsvResult(
        model_version=model.version,
        threshold=model.model.threshold_,
        request_id=request_id,
        filename=name,
        scored=len(scored),
        rejected=len(rejects),
        anomalies=int((scored["decision"] == scoring.ANOMALY).sum()),
        results=[
            {"line": line, "timestamp": t, "equipment_id": e, "score": s, "decision": d}
            for line, t, e, s, d in zip(*columns, strict=True)
        ],
        rejects=[
            {"line": line, "reason": reason, "content": content}
            for line, reason, content in rejects.itertuples(index=False)
        ],
    )
