"""Administration, for the ``admin`` role and audited: deploy or roll back while requests flow, manage the keys.

Plain ``def`` endpoints (SQLite writes, for the thread pool); a refusal is answered by errors.py.
"""

from __future__ import annotations

import time
from typing import Any

from fastapi import APIRouter, Request

from . import auth, deployment
from .deps import Deployer, KeyAdmin, RequestId, RollbackAdmin, client_address
from .models import JSON_BODY_ERRORS, KEY_ERRORS, KeyIn, error_doc
from .monitoring import elapsed_ms

router = APIRouter(prefix="/admin")


@router.post(
    "/models/{version}/deploy",
    summary="Déployer une version du modèle (sans interruption)",
    responses={
        **KEY_ERRORS,
        404: error_doc("Version absente du registre."),
        409: error_doc("Version déjà servie."),
        422: error_doc("Version refusée (numéro invalide, empreinte, chargement ou vérification en échec)."),
    },
)
def deploy_model(request: Request, version: str, who: Deployer, request_id: RequestId) -> Any:
    """Vérifie la version candidate (empreinte sha256, chargement, scores sains sur un échantillon simulé),
    puis la sert : chaque processus bascule en moins d'une seconde, sans requête perdue. Audité."""
    state = request.app.state
    pointer, loaded = deployment.deploy(
        state.settings.state_db,
        version,
        who.name,
        state.settings.models_dir,
        request_id=request_id,
        client=client_address(request),
    )
    state.models.add(loaded)
    return {**pointer.__dict__, "request_id": request_id}


@router.post(
    "/rollback",
    summary="Revenir à la version précédente du modèle",
    responses={**KEY_ERRORS, 409: error_doc("Aucune version précédente vers laquelle revenir.")},
)
def rollback_model(request: Request, who: RollbackAdmin, request_id: RequestId) -> Any:
    """Sert à nouveau la version que le dernier déploiement a remplacée (déjà en mémoire : moins d'une seconde). Audité."""
    start = time.perf_counter()
    pointer = deployment.rollback(
        request.app.state.settings.state_db, who.name, request_id=request_id, client=client_address(request)
    )
    return {**pointer.__dict__, "switch_ms": round(elapsed_ms(start), 1), "request_id": request_id}


@router.get("/keys", summary="Les clés d'API (jamais les clés elles-mêmes)", responses=KEY_ERRORS)
def list_api_keys(request: Request, who: KeyAdmin) -> list[dict[str, Any]]:
    return auth.list_keys(request.app.state.settings.state_db)


@router.post(
    "/keys",
    status_code=201,
    summary="Créer une clé d'API (affichée une seule fois)",
    responses={**KEY_ERRORS, **JSON_BODY_ERRORS, 422: error_doc("Nom ou rôle refusé.")},
)
def create_api_key(request: Request, who: KeyAdmin, body: KeyIn) -> Any:
    key = auth.create_key(request.app.state.settings.state_db, body.name, body.role, by=who.name)
    return {"key": key, "key_id": key[3:19], "name": body.name.strip(), "role": body.role}


@router.delete(
    "/keys/{key_id}",
    summary="Révoquer une clé d'API",
    responses={**KEY_ERRORS, 404: error_doc("Aucune clé de cet identifiant."), 409: error_doc("Clé déjà révoquée.")},
)
def revoke_api_key(request: Request, who: KeyAdmin, key_id: str) -> Any:
    auth.revoke_key(request.app.state.settings.state_db, key_id, by=who.name)
    return {"key_id": key_id, "revoked": True}
