"""The WebSocket ``/stream``: one reading per message in, its score out, in the context of its equipment.

The service keeps each equipment's recent readings (``common.incremental``), so a reading
streamed is scored exactly as in a batch of the same series.
Stage 4: the operator key is checked once, at the handshake; each reading is scored by the
version the deployment pointer names when it arrives (one scorer per version,
``scoring.Scorers``) and audited before its answer leaves.
"""

from __future__ import annotations

import itertools
import json
import logging
import time
import uuid
from typing import Any

from fastapi import APIRouter, WebSocket
from fastapi.responses import JSONResponse
from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool

from common.incremental import OutOfOrderError
from common.messages import JSON_SYNTAX, field_errors
from common.readings import TimedReading
from common.registry import RegistryError
from common.schema import EQUIPMENT_ID, TIMESTAMP

from . import audit, auth, inference_log, scoring
from .deps import Principal, client_address, served_model
from .errors import AUDIT_UNAVAILABLE, LOG_UNAVAILABLE
from .middleware import request_id_from
from .monitoring import elapsed_ms, stamped, trace_reading
from .pages import size

logger = logging.getLogger(__name__)
router = APIRouter()

STREAM_ROUTE = "WS /stream"  # how the metrics name the stream's messages


class MessageRefused(Exception):
    """A stream message cannot be scored; ``detail`` and ``errors`` (French) say why."""

    def __init__(self, detail: str, errors: list[dict[str, str]] | None = None):
        super().__init__(detail)
        self.detail = detail
        self.errors = errors or []


def score_message(state: Any, text: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """Validate one message and score it after its equipment's previous readings: the reading (stamped)
    and its result (``scoring.result``); MessageRefused if it cannot be."""
    limit = state.settings.max_body_bytes
    if len(text.encode("utf-8")) > limit:
        raise MessageRefused(f"message trop volumineux : {size(limit)} au plus")
    try:
        loaded = served_model(state)
    except RegistryError as exc:
        raise MessageRefused(f"aucun modèle chargé : le service ne peut pas prédire ({exc})") from None
    try:
        payload = json.loads(text)
    except RecursionError:  # a few thousand nested brackets fit in the size limit and exhaust the stack
        raise MessageRefused("message refusé : JSON mal formé (imbrication trop profonde)") from None
    except ValueError as exc:  # a JSONDecodeError, or a number of over 4,300 digits
        problem = JSON_SYNTAX.get(getattr(exc, "msg", ""), "erreur de syntaxe")
        where = f", caractère {exc.pos}" if isinstance(exc, json.JSONDecodeError) else ""
        raise MessageRefused(f"message refusé : JSON mal formé ({problem}{where})") from None
    try:
        reading = stamped(TimedReading.model_validate(payload).model_dump())
    except ValidationError as exc:
        errors = field_errors(exc.errors())
        named = ", ".join(dict.fromkeys(e["field"] for e in errors))
        raise MessageRefused(f"mesure refusée, à corriger : {named}", errors) from None
    try:
        score = state.scorers.get(loaded).score_reading(reading)
    except OutOfOrderError as exc:
        raise MessageRefused(
            f"mesure refusée, à corriger : {TIMESTAMP}", [{"field": TIMESTAMP, "message": str(exc)}]
        ) from None
    return reading, scoring.result(loaded, score)


async def stream_answer(state: Any, who: Principal, client: str | None, request_id: str, text: str) -> dict[str, Any]:
    """The answer to one stream message: its score, or why it was refused; audited, traced and counted."""
    start, status = time.perf_counter(), 200
    try:
        reading, result = score_message(state, text)
        await trace_reading(state, who, client, "stream", request_id, reading, result, elapsed_ms(start))
        answer = {**result, EQUIPMENT_ID: reading[EQUIPMENT_ID], TIMESTAMP: reading[TIMESTAMP].isoformat()}
    except MessageRefused as exc:
        status, answer = 422, {"detail": exc.detail, "errors": exc.errors}
    except audit.AuditUnavailable as exc:
        logger.error("stream reading not answered, audit trail unavailable: %s", exc)
        status, answer = 503, {"detail": AUDIT_UNAVAILABLE, "errors": []}
    except inference_log.LogUnavailable as exc:
        logger.error("stream reading not answered, inference log unavailable: %s", exc)
        status, answer = 503, {"detail": LOG_UNAVAILABLE, "errors": []}
    state.metrics.record_request(STREAM_ROUTE, status, elapsed_ms(start))
    return {**answer, "request_id": request_id}


async def refuse_handshake(websocket: WebSocket, status: int, detail: str, headers: dict[str, str]) -> None:
    body = {"detail": detail, "errors": [], "request_id": uuid.uuid4().hex}
    if "websocket.http.response" in websocket.scope.get("extensions", {}):
        await websocket.send_denial_response(JSONResponse(body, status_code=status, headers=headers))
    else:
        await websocket.close(code=1008, reason=detail[:120])


@router.websocket("/stream")
async def stream(websocket: WebSocket) -> None:
    """One reading per message in (JSON text), one answer per message out; a refusal keeps the connection open.

    The operator key is checked once, at the handshake: header ``X-API-Key`` (preferred: a
    query string ends up in proxies' logs), else the ``api_key`` query parameter. A refused
    handshake gets an HTTP answer (401, 403, 429) where the server supports it, else close code 1008.
    """
    key = websocket.headers.get(auth.HEADER) or websocket.query_params.get("api_key")
    try:
        who = await run_in_threadpool(websocket.app.state.auth.check, key, "predict")
    except (auth.AuthError, audit.AuditUnavailable) as exc:
        status, detail = (exc.status, exc.detail) if isinstance(exc, auth.AuthError) else (503, AUDIT_UNAVAILABLE)
        await refuse_handshake(websocket, status, detail, getattr(exc, "headers", {}))
        return
    await websocket.accept()
    limit = websocket.app.state.settings.max_body_bytes
    # Each message's id is the handshake's (the proxy's X-Request-ID, else a new one) and its rank: the
    # audit links every reading of a connection to the proxy's log line of that handshake.
    connection_id = request_id_from(websocket.headers)[:48]
    for rank in itertools.count(1):
        message = await websocket.receive()
        if message["type"] == "websocket.disconnect":
            return
        text = message.get("text")
        if text is None:  # a binary frame: read as UTF-8, within the same size limit
            text = (message.get("bytes") or b"")[: limit + 1].decode("utf-8", "replace")
        request_id = f"{connection_id}-{rank}"
        answer = await stream_answer(websocket.app.state, who, client_address(websocket), request_id, text)
        await websocket.send_json(answer)
