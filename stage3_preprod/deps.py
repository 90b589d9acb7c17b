"""Dependencies of the routes: what an endpoint's signature says it needs.

They are ``async def``: they do no blocking work, so FastAPI runs them on the event loop
without a hop to its thread pool.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, HTTPException, Request

from common.registry import LoadedModel


class ModelUnavailable(Exception):
    """No usable model was found at startup; the message (French) says why."""


async def get_model(request: Request) -> LoadedModel:
    if request.app.state.model is None:
        raise ModelUnavailable(request.app.state.model_error)
    return request.app.state.model


async def get_request_id(request: Request) -> str:
    return request.state.request_id  # set by RequestLog before anything else runs


async def require_json(request: Request) -> None:
    """Refuse (415) a body that is not declared as JSON, before reading it as one."""
    media_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media_type != "application/json":
        raise HTTPException(415)


ModelDep = Annotated[LoadedModel, Depends(get_model)]
RequestId = Annotated[str, Depends(get_request_id)]
