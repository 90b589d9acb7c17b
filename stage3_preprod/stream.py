"""The WebSocket ``/stream``: one reading per message in, its score out, in the context of its equipment.

The service keeps each equipment's recent readings (``common.incremental``), so a reading
streamed is scored exactly as in a batch of the same series.
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from typing import Any

from fastapi import APIRouter, WebSocket
from pydantic import ValidationError

from common.incremental import OutOfOrderError
from common.messages import JSON_SYNTAX, field_errors
from common.readings import TimedReading
from common.schema import EQUIPMENT_ID, TIMESTAMP

from . import inference_log, scoring
from .errors import LOG_UNAVAILABLE
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
    if state.model is None:
        raise MessageRefused(f"aucun modèle chargé : le service ne peut pas prédire ({state.model_error})")
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
        score = state.scorer.score_reading(reading)
    except OutOfOrderError as exc:
        raise MessageRefused(
            f"mesure refusée, à corriger : {TIMESTAMP}", [{"field": TIMESTAMP, "message": str(exc)}]
        ) from None
    return reading, scoring.result(state.model, score)


def stream_answer(state: Any, text: str) -> dict[str, Any]:
    """The answer to one stream message: its score, or why it was refused; traced and counted."""
    start, request_id, status = time.perf_counter(), uuid.uuid4().hex, 200
    try:
        reading, result = score_message(state, text)
        trace_reading(state, "stream", request_id, reading, result, elapsed_ms(start))
        answer = {**result, EQUIPMENT_ID: reading[EQUIPMENT_ID], TIMESTAMP: reading[TIMESTAMP].isoformat()}
    except MessageRefused as exc:
        status, answer = 422, {"detail": exc.detail, "errors": exc.errors}
    except inference_log.LogUnavailable as exc:
        logger.error("stream reading not answered, inference log unavailable: %s", exc)
        status, answer = 503, {"detail": LOG_UNAVAILABLE, "errors": []}
    state.metrics.record_request(STREAM_ROUTE, status, elapsed_ms(start))
    return {**answer, "request_id": request_id}


@router.websocket("/stream")
async def stream(websocket: WebSocket) -> None:
    """One reading per message in (JSON text), one answer out; a refusal (French) keeps the connection open."""
    await websocket.accept()
    limit = websocket.app.state.settings.max_body_bytes
    while True:
        message = await websocket.receive()
        if message["type"] == "websocket.disconnect":
            return
        text = message.get("text")
        if text is None:  # a binary frame: read as UTF-8, within the same size limit
            text = (message.get("bytes") or b"")[: limit + 1].decode("utf-8", "replace")
        await websocket.send_json(stream_answer(websocket.app.state, text))  # one log line: in the event loop
