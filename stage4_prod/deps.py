"""Dependencies of the routes: what an endpoint's signature says it needs.

Stage 4 adds the caller: ``Operator``, ``Reader``, ``Auditor``... are the key checks of
``auth.py`` (401, 403 or 429 before the endpoint runs), and the model is the version the
deployment pointer names when the request starts (``deployment.ModelCache``). They are
``async def``: one indexed read on the thread's open SQLite connection and a model cached
between two reads of the pointer, too little work to be worth a hop to the thread pool.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Depends, HTTPException, Request, WebSocket

from common.registry import LoadedModel, RegistryError

from .auth import Auditor, Deployer, KeyAdmin, Operator, Principal, Reader, RollbackAdmin, Technician
from .drift import DriftMonitor

__all__ = ["Auditor", "Deployer", "KeyAdmin", "Operator", "Principal", "Reader", "RollbackAdmin", "Technician"]


class ModelUnavailable(Exception):
    """No usable model was found at startup; the message (French) says why."""


def served_model(state: Any) -> LoadedModel:
    """The version the pointer names now (``state``: app.state); after a switch, this process's drift
    window starts again against the new version's reference. Raises RegistryError if there is none."""
    loaded = state.models.get()
    if state.drift is None or state.drift.model_version != loaded.version:
        state.drift = DriftMonitor(loaded.model.reference_, state.settings.drift_window, model_version=loaded.version)
    return loaded


def model_of(request: Request) -> LoadedModel:
    """The version the pointer names now: the whole request uses it, even if a deploy happens meanwhile."""
    try:
        loaded = served_model(request.app.state)
    except RegistryError as exc:
        raise ModelUnavailable(request.app.state.model_error or str(exc)) from None
    request.state.model_version = loaded.version  # the X-Model-Version header names the same one
    return loaded


async def get_model(request: Request) -> LoadedModel:
    return model_of(request)


async def get_request_id(request: Request) -> str:
    return request.state.request_id  # set by RequestLog before anything else runs


async def require_json(request: Request) -> None:
    """Refuse (415) a body that is not declared as JSON, before reading it as one."""
    media_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media_type != "application/json":
        raise HTTPException(415)


def model_version(scope: dict[str, Any]) -> str:
    """The version that served this request, else the one this worker serves now."""
    if "model_version" in scope.get("state", {}):
        return scope["state"]["model_version"]
    cache = getattr(scope["app"].state, "models", None)
    return (cache.version if cache else None) or "-"


def client_address(request: Request | WebSocket) -> str | None:
    return request.client.host if request.client else None


ModelDep = Annotated[LoadedModel, Depends(get_model)]
RequestId = Annotated[str, Depends(get_request_id)]
