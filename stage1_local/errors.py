"""What a person gets when something goes wrong: always a French page, never a traceback."""

from __future__ import annotations

import logging

from fastapi import Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from starlette.exceptions import HTTPException

from .deps import ModelUnavailable
from .pages import error_page

logger = logging.getLogger(__name__)

HTTP_MESSAGES = {400: "requête mal formée", 404: "page introuvable", 405: "méthode non autorisée sur cette adresse"}


def error_response(
    request: Request, status_code: int, detail: str, errors: list[dict[str, str]] | None = None
) -> Response:
    """The French error a person gets: a page listing what to fix."""
    return error_page(request, status_code, *([e["message"] for e in errors] if errors else [detail]))


def no_model(request: Request, exc: ModelUnavailable) -> Response:
    return error_page(request, 503, "Aucun modèle : lancez make model, puis redémarrez ce service.", f"Détail : {exc}")


def invalid_request(request: Request, exc: RequestValidationError) -> Response:
    fields = [str(e["loc"][-1]) for e in exc.errors()]
    if "fichier" in fields:
        return error_page(
            request, 422, "aucun fichier reçu : choisissez un fichier CSV avant de cliquer sur « Analyser »"
        )
    return error_page(request, 422, *(f"champ « {f} » manquant ou invalide" for f in fields))


def http_error(request: Request, exc: HTTPException) -> Response:
    message = HTTP_MESSAGES.get(exc.status_code, f"requête refusée (code {exc.status_code})")
    response = error_response(request, exc.status_code, message)
    response.headers.update(exc.headers or {})
    return response


def internal_error(request: Request, exc: Exception) -> Response:
    logger.exception("unexpected error on %s %s", request.method, request.url.path)
    return error_response(request, 500, "erreur interne du service : elle est consignée dans son journal")


HANDLERS = {
    ModelUnavailable: no_model,
    RequestValidationError: invalid_request,
    HTTPException: http_error,
    Exception: internal_error,
}
