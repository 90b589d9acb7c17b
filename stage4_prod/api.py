"""The REST API: one reading scored over HTTP, the service's health and version, the model versions.

The endpoints are ``async def``: scoring one reading is a fraction of a millisecond of
numpy, no blocking work, so it runs on the event loop without a hop to the thread pool
(its inference-log line is a short append, its audit commit is handed to the recorder's
writer thread). ``GET /health`` writes probe files and ``GET /models`` reads the registry:
plain ``def``, in the pool. Stage 4: ``/predict`` needs an operator key, ``/models`` a reader
key; ``/health`` and ``/version`` none (probes and the proxy call them); the served model is
the one the deployment pointer names.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from fastapi import APIRouter, Depends, Request

from common.readings import TimedReading
from common.registry import RegistryError, list_versions, read_metadata

from . import __version__, inference_log, scoring
from .deps import ModelDep, Operator, Reader, RequestId, client_address, require_json
from .errors import error_response
from .models import (
    JSON_BODY_ERRORS,
    KEY_ERRORS,
    NOT_JSON,
    Health,
    ModelInfo,
    ModelList,
    Prediction,
    VersionInfo,
    error_doc,
)
from .monitoring import elapsed_ms, stamped, trace_reading

logger = logging.getLogger(__name__)

router = APIRouter()


@router.get(
    "/health",
    summary="Le service est-il prêt ?",
    response_model=Health,
    responses={503: error_doc("Aucun modèle chargé, ou journal d'audit ou des inférences impossible à écrire.")},
)
def health(request: Request, model: ModelDep) -> Any:
    """200 avec la version du modèle chargé si le service peut prédire et tracer ses prédictions, 503 sinon."""
    settings = request.app.state.settings
    for directory, what in (
        (settings.state_db.parent, "le journal d'audit"),
        (settings.log_dir, "le journal des inférences"),
    ):
        try:
            inference_log.check_writable(directory)
        except inference_log.LogUnavailable as exc:
            return error_response(request, 503, f"le service ne peut pas écrire {what} : {exc}")
    return Health(status="ok", model_version=model.version)


@router.get("/version", summary="Ce qui tourne exactement", response_model=VersionInfo)
async def version(request: Request) -> VersionInfo:
    """Versions de l'application et du modèle, commit Git et date de construction de l'image."""
    settings = request.app.state.settings
    return VersionInfo(
        app_version=__version__,
        model_version=request.app.state.models.version,
        git_commit=settings.git_commit,
        build_date=settings.build_date,
    )


@router.post(
    "/predict",
    summary="Analyser une mesure",
    response_model=Prediction,
    dependencies=[Depends(require_json)],
    responses={
        **KEY_ERRORS,
        **JSON_BODY_ERRORS,
        **NOT_JSON,
        422: error_doc("Mesure refusée : chaque champ à corriger est nommé, avec la raison."),
        503: error_doc("Aucun modèle chargé."),
    },
)
async def predict(
    request: Request, who: Operator, reading: TimedReading, model: ModelDep, request_id: RequestId
) -> Prediction:
    """Score, décision (`Normal` ou `Anomalie`), seuil et version du modèle pour une mesure.

    Les huit capteurs sont obligatoires, en nombres JSON finis dans leur plage plausible ;
    `equipment_id` et `timestamp` sont facultatifs. Tout autre champ est refusé. La mesure
    est notée seule : pour tenir compte des précédentes d'un équipement, utilisez `/stream`.
    """
    start = time.perf_counter()
    result = scoring.score_reading(model, reading)
    values, client = stamped(reading.model_dump()), client_address(request)
    await trace_reading(request.app.state, who, client, "api", request_id, values, result, elapsed_ms(start))
    return Prediction(**result, equipment_id=reading.equipment_id, request_id=request_id)


@router.get("/models", summary="Les versions du modèle", response_model=ModelList, responses=KEY_ERRORS)
def models(request: Request, who: Reader) -> ModelList:
    """Chaque version du registre (date, commit, seuil, lignes d'entraînement, empreinte) et celle qui est servie."""
    settings, served = request.app.state.settings, request.app.state.models.version
    found = []
    for v in list_versions(settings.models_dir):
        try:
            meta = read_metadata(v, settings.models_dir)
        except RegistryError as exc:
            logger.warning("registry version %s skipped: %s", v, exc)
            continue
        found.append(ModelInfo.model_validate({**meta, "version": v, "served": v == served}))
    return ModelList(served=served, models=found)
