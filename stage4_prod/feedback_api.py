"""``POST /feedback``: maintenance says whether an alarm was right, or reports a missed fault (``feedback.py``)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request

from . import feedback
from .deps import RequestId, Technician
from .models import JSON_BODY_ERRORS, KEY_ERRORS, FeedbackIn, error_doc

router = APIRouter()


@router.post(
    "/feedback",
    summary="Confirmer ou infirmer une alarme, signaler une panne manquée",
    responses={
        **KEY_ERRORS,
        **JSON_BODY_ERRORS,
        404: error_doc("Aucune prédiction avec cet identifiant de requête, ou pour cet équipement avant cette heure."),
        409: error_doc("La requête n'a levé aucune alarme : rien à confirmer ou infirmer."),
        422: error_doc("Verdict refusé : chaque champ à corriger est nommé, avec la raison."),
    },
)
def post_feedback(request: Request, who: Technician, body: FeedbackIn, request_id: RequestId) -> Any:
    """Enregistre le verdict de la maintenance (inscrit aussi au journal d'audit) ; `GET /monitoring` en fait
    la synthèse par version du modèle."""
    stored = feedback.record(
        request.app.state.settings.state_db,
        body.verdict,
        who.name,
        body.request_id,
        body.equipment_id,
        body.fault_at,
        body.comment,
    )
    return {**stored, "request_id": request_id}
