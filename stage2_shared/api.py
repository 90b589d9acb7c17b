"""The REST API: one reading scored over HTTP, the service's health and version.

The endpoints are ``async def``: scoring one reading is a fraction of a millisecond of
numpy, no blocking work, so it runs on the event loop without a hop to the thread pool.
"""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request

from common.readings import Reading

from . import __version__, scoring
from .deps import ModelDep, RequestId, require_json
from .models import Health, Prediction, VersionInfo, error_doc

router = APIRouter()


@router.get(
    "/health",
    summary="Le service est-il prêt ?",
    response_model=Health,
    responses={503: error_doc("Aucun modèle chargé : le service ne peut pas prédire.")},
)
async def health(model: ModelDep) -> Health:
    """200 avec la version du modèle chargé si le service peut prédire, 503 sinon."""
    return Health(status="ok", model_version=model.version)


@router.get("/version", summary="Ce qui tourne exactement", response_model=VersionInfo)
async def version(request: Request) -> VersionInfo:
    """Versions de l'application et du modèle, commit Git et date de construction de l'image."""
    settings, model = request.app.state.settings, request.app.state.model
    return VersionInfo(
        app_version=__version__,
        model_version=model.version if model else None,
        git_commit=settings.git_commit,
        build_date=settings.build_date,
    )


@router.post(
    "/predict",
    summary="Analyser une mesure",
    response_model=Prediction,
    dependencies=[Depends(require_json)],
    responses={
        400: error_doc("Corps illisible : le JSON n'est pas un texte UTF-8."),
        413: error_doc("Corps de requête trop volumineux."),
        415: error_doc("Le corps n'est pas déclaré comme JSON."),
        422: error_doc("Mesure refusée : chaque champ à corriger est nommé, avec la raison."),
        503: error_doc("Aucun modèle chargé."),
    },
)
async def predict(reading: Reading, model: ModelDep, request_id: RequestId) -> Prediction:
    """Score, décision (`Normal` ou `Anomalie`), seuil et version du modèle pour une mesure.

    Les huit capteurs sont obligatoires, en nombres JSON finis dans leur plage plausible ;
    `equipment_id` est facultatif. Tout autre champ est refusé.
    """
    result = scoring.score_reading(model, reading)
    return Prediction(**result, equipment_id=reading.equipment_id, request_id=request_id)
