"""Dependencies of the routes: what an endpoint's signature says it needs.

They are ``async def``: they do no blocking work, so FastAPI runs them on the event loop
without a hop to its thread pool.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from common.registry import LoadedModel


class ModelUnavailable(Exception):
    """No usable model was found at startup; the message (French) says why."""


async def get_model(request: Request) -> LoadedModel:
    if request.app.state.model is None:
        raise ModelUnavailable(request.app.state.model_error)
    return request.app.state.model


ModelDep = Annotated[LoadedModel, Depends(get_model)]
