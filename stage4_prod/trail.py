"""``GET /audit``: the audit trail (``audit.py``) read by an auditor, as JSON or as a CSV export."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response

from . import audit
from .deps import Auditor
from .models import KEY_ERRORS, error_doc

router = APIRouter()


@router.get(
    "/audit",
    summary="Le journal d'audit : qui a prédit quoi, avec quelle version",
    responses={
        **KEY_ERRORS,
        200: {"content": {"text/csv": {}}, "description": "Les lignes (JSON, ou CSV avec format=csv)."},
        422: error_doc("Filtre refusé (date qui n'est pas en ISO 8601, limite hors bornes...)."),
    },
)
def read_audit(
    request: Request,
    who: Auditor,
    user: str | None = None,
    model_version: str | None = None,
    since: str | None = None,
    until: str | None = None,
    kind: str | None = None,
    limit: int = 100,
    offset: int = 0,
    format: str = "json",
) -> Any:
    """Les lignes du journal, des plus anciennes aux plus récentes, filtrées par nom de clé (`user`),
    version du modèle, période (`since` incluse, `until` exclue, ISO 8601) et nature (`kind`) ;
    `limit` 10 000 au plus. `format=csv` : export CSV (séparateur « ; »)."""
    rows = audit.query(request.app.state.settings.state_db, user, model_version, since, until, kind, limit, offset)
    if format == "csv":
        headers = {"Content-Disposition": 'attachment; filename="audit.csv"'}
        return Response(audit.to_csv(rows), media_type="text/csv; charset=utf-8", headers=headers)
    return {"count": len(rows), "rows": rows}
