"""What a client gets when something goes wrong: always French, never a traceback.

A person in a browser (the form's addresses, or ``Accept: text/html``) gets a page; a
program gets JSON: ``{"detail": ..., "errors": [{"field", "message"}], "request_id": ...}``.
Stage 4 adds the key refusals (401, 403, 429, with ``auth.py``'s own French message, which
never holds the key), the refused changes (``state.Refused``) and the audit trail that cannot be written (503).
"""

from __future__ import annotations

import logging

from fastapi import Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException

from common.messages import field_errors

from .audit import AuditUnavailable
from .deps import ModelUnavailable
from .inference_log import LogUnavailable
from .pages import error_page, size
from .state import Refused

logger = logging.getLogger(__name__)

HTTP_MESSAGES = {
    400: "requête mal formée : corps illisible (JSON en UTF-8 attendu, ou formulaire multipart pour un fichier)",
    404: "page introuvable",
    405: "méthode non autorisée sur cette adresse",
    415: "type de contenu non pris en charge : envoyez du JSON (en-tête Content-Type: application/json)",
}
LOG_UNAVAILABLE = (
    "journal des inférences indisponible : la prédiction n'est pas rendue (aucune réponse sans sa trace), "
    "réessayez plus tard"
)
AUDIT_UNAVAILABLE = (
    "journal d'audit indisponible : la prédiction n'est pas rendue (aucune réponse sans sa trace), réessayez plus tard"
)
AUTH_STATUSES = (401, 403, 429)


def wants_html(request: Request) -> bool:
    path = request.url.path
    return path == "/" or path.startswith("/fichier") or "text/html" in request.headers.get("accept", "")


def error_response(
    request: Request, status_code: int, detail: str, errors: list[dict[str, str]] | None = None
) -> Response:
    """The French error a client gets: a page for a person in a browser, JSON for a program."""
    if not wants_html(request):
        request_id = request.scope.get("state", {}).get("request_id", "")
        return JSONResponse({"detail": detail, "errors": errors or [], "request_id": request_id}, status_code)
    return error_page(request, status_code, *([e["message"] for e in errors] if errors else [detail]))


def no_model(request: Request, exc: ModelUnavailable) -> Response:
    if not wants_html(request):
        return error_response(request, 503, f"aucun modèle chargé : le service ne peut pas prédire ({exc})")
    return error_page(request, 503, "Aucun modèle : lancez make model, puis redémarrez ce service.", f"Détail : {exc}")


def no_log(request: Request, exc: LogUnavailable) -> Response:
    logger.error("request refused, inference log unavailable: %s", exc)
    return error_response(request, 503, LOG_UNAVAILABLE)


def no_audit(request: Request, exc: AuditUnavailable) -> Response:
    logger.error("request refused, state database unavailable: %s", exc)
    return error_response(request, 503, AUDIT_UNAVAILABLE)


def refused(request: Request, exc: Refused) -> Response:
    """A key, deploy, feedback or audit filter refused: its own French message and status."""
    return error_response(request, exc.status, str(exc))


def invalid_request(request: Request, exc: RequestValidationError) -> Response:
    if not wants_html(request):
        errors = field_errors(exc.errors())
        named = ", ".join(dict.fromkeys(e["field"] for e in errors))
        return error_response(request, 422, f"requête refusée, à corriger : {named}", errors)
    fields = [str(e["loc"][-1]) for e in exc.errors()]
    if "fichier" in fields:
        return error_page(
            request, 422, "aucun fichier reçu : choisissez un fichier CSV avant de cliquer sur « Analyser »"
        )
    return error_page(request, 422, *(f"champ « {f} » manquant ou invalide" for f in fields))


def http_error(request: Request, exc: HTTPException) -> Response:
    if exc.status_code in AUTH_STATUSES:  # auth.require's French message, which never holds the key
        message = exc.detail
    else:
        message = HTTP_MESSAGES.get(exc.status_code, f"requête refusée (code {exc.status_code})")
    response = error_response(request, exc.status_code, message)
    response.headers.update(exc.headers or {})
    return response


def internal_error(request: Request) -> Response:
    """What a client sees of an error we caused: no trace, the request id to quote (RequestLog logs it)."""
    return error_response(
        request, 500, "erreur interne du service : elle est consignée dans son journal sous l'identifiant de la requête"
    )


def too_large(request: Request, limit: int) -> Response:
    return error_response(request, 413, f"corps de requête trop volumineux : {size(limit)} au plus")


HANDLERS = {
    ModelUnavailable: no_model,
    LogUnavailable: no_log,
    AuditUnavailable: no_audit,
    Refused: refused,
    RequestValidationError: invalid_request,
    HTTPException: http_error,
}
