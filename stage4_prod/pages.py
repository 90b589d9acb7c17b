"""The web page: a form for one reading, an upload for a CSV file, the scored file to download.

Rendered from ``templates/`` by Jinja2 (every value escaped). Stage 4: the person types an
operator key in each form (a browser form cannot send a header), checked before anything
else. Scoring a whole file is blocking work: that endpoint is a plain ``def``, which FastAPI
runs in its thread pool; the one-reading form is ``async``, its audit commit handed to the
recorder's writer thread.
"""

from __future__ import annotations

import io
import re
import secrets
import threading
import time
from collections import OrderedDict
from pathlib import Path
from typing import Annotated, Any

import pandas as pd
from fastapi import APIRouter, File, Form, HTTPException, Request, UploadFile
from fastapi.responses import HTMLResponse, Response
from fastapi.templating import Jinja2Templates
from pydantic import ValidationError

from common.data import DataError, write_csv
from common.messages import field_errors
from common.readings import decimal_point, from_text
from common.schema import DEFAULT_EQUIPMENT_ID, EQUIPMENT_ID, EQUIPMENT_ID_MAX_LENGTH, EXAMPLE_READING, SENSORS

from . import auth, scoring
from .deps import ModelDep, Principal, RequestId, client_address
from .models import ReadingForm
from .monitoring import elapsed_ms, stamped, trace, trace_reading

MAX_DOWNLOADS = 20  # scored files kept in memory for download; the oldest is forgotten first
MAX_ROWS_SHOWN = 50

router = APIRouter(include_in_schema=False)  # pages are for people, the OpenAPI for programs
templates = Jinja2Templates(directory=Path(__file__).parent / "templates")


class Downloads:
    """The last scored files, kept in memory so that a result page can link to them."""

    def __init__(self, capacity: int = MAX_DOWNLOADS):
        self.capacity = capacity
        self._files: OrderedDict[str, tuple[str, bytes]] = OrderedDict()
        self._lock = threading.Lock()  # endpoints run in a thread pool

    def add(self, filename: str, content: bytes) -> str:
        """Keep a file and return the unguessable token that fetches it."""
        token = secrets.token_urlsafe(16)
        with self._lock:
            self._files[token] = (filename, content)
            while len(self._files) > self.capacity:
                self._files.popitem(last=False)
        return token

    def get(self, token: str) -> tuple[str, bytes] | None:
        with self._lock:
            return self._files.get(token)


def size(n_bytes: int) -> str:
    return f"{n_bytes / 2**20:g} Mo" if n_bytes >= 2**20 else f"{n_bytes} octets"


def error_page(request: Request, status_code: int, *messages: str) -> HTMLResponse:
    return templates.TemplateResponse(request, "error.html", {"messages": messages}, status_code=status_code)


def home(
    request: Request, values: dict[str, str] | None = None, status_code: int = 200, **outcome: Any
) -> HTMLResponse:
    """The page with both forms; ``values`` default to an example of a normal reading.

    ``outcome``: ``errors`` (field -> message) or ``result`` for the reading, ``file_errors``
    or ``file`` for the upload.
    """
    values = values or {**{k: f"{v:g}" for k, v in EXAMPLE_READING.items()}, EQUIPMENT_ID: ""}
    context = {
        "values": values,
        "sensors": SENSORS,
        "default_equipment": DEFAULT_EQUIPMENT_ID,
        "max_length": EQUIPMENT_ID_MAX_LENGTH,
        "max_rows": MAX_ROWS_SHOWN,
        "upload_limit": size(request.app.state.settings.max_upload_bytes),
        "errors": {},
        **outcome,
    }
    return templates.TemplateResponse(request, "index.html", context, status_code=status_code)


def form_operator(request: Request, key: str) -> Principal:
    """The operator who typed ``key`` in a form; HTTPException 401, 403 or 429 (a French page) otherwise."""
    try:
        principal = request.app.state.auth.check(key.strip() or None, "predict")
    except auth.AuthError as exc:
        raise HTTPException(exc.status, exc.detail, exc.headers) from None
    request.state.principal = principal  # the request log names the caller
    return principal


def download_name(uploaded: str | None) -> str:
    """A safe file name for the scored copy of an uploaded file."""
    stem = re.sub(r"[^A-Za-z0-9_.-]", "_", Path(uploaded or "").stem)[:80]
    return f"{stem or 'mesures'}_scores.csv"


def scored_csv(scored: pd.DataFrame) -> bytes:
    """The scored frame in SKAB's format; the equipment column only if it says something."""
    buffer = io.StringIO()
    write_csv(scored, buffer, with_equipment=set(scored[EQUIPMENT_ID]) != {DEFAULT_EQUIPMENT_ID})
    return buffer.getvalue().encode("utf-8")


@router.get("/", response_class=HTMLResponse)
def show_form(request: Request, model: ModelDep) -> HTMLResponse:
    return home(request)


@router.post("/", response_class=HTMLResponse)
async def score_form(
    request: Request, model: ModelDep, request_id: RequestId, form: Annotated[ReadingForm, Form()]
) -> HTMLResponse:
    """Score the typed reading, or show which values to fix (422); the operator key first (401, 403, 429)."""
    typed = form.model_dump()
    who = form_operator(request, typed.pop("api_key"))
    try:
        reading = from_text(typed)
    except ValidationError as exc:
        errors = {e["field"]: e["message"] for e in field_errors(exc.errors())}
        # Wrong values are shown as typed; the others with a decimal point, which a number input needs.
        shown = {k: v if k in errors or k == EQUIPMENT_ID else decimal_point(v) for k, v in typed.items()}
        return home(request, shown, status_code=422, errors=errors)
    start = time.perf_counter()
    result = scoring.score_reading(model, reading)
    values, client = stamped(reading.model_dump()), client_address(request)
    await trace_reading(request.app.state, who, client, "form", request_id, values, result, elapsed_ms(start))
    shown = {**typed, **{s.name: repr(getattr(reading, s.name)).removesuffix(".0") for s in SENSORS}}
    return home(request, shown, result={**result, "equipment_id": reading.equipment_id})


@router.post("/fichier", response_class=HTMLResponse)
def score_upload(
    request: Request,
    model: ModelDep,
    request_id: RequestId,
    fichier: Annotated[UploadFile, File()],
    api_key: Annotated[str, Form()] = "",
) -> HTMLResponse:
    """Score an uploaded SKAB-format CSV: summary, anomalous rows and a download link."""
    who = form_operator(request, api_key)
    limit = request.app.state.settings.max_upload_bytes
    data = fichier.file.read(limit + 1)
    name = fichier.filename or "sans nom"
    if len(data) > limit:
        return home(
            request, status_code=413, file_errors=[f"fichier « {name} » trop volumineux : {size(limit)} au plus"]
        )
    start = time.perf_counter()
    try:
        scored = scoring.score_file(model, data)
    except DataError as exc:
        return home(request, status_code=422, file_errors=[f"fichier « {name} » refusé : {exc}"])
    traced = scored.assign(model_version=model.version)
    trace(request.app.state, who, client_address(request), "form_file", request_id, traced, elapsed_ms(start))
    filename = download_name(fichier.filename)
    token = request.app.state.downloads.add(filename, scored_csv(scored))
    alarms = scored[scored["decision"] == scoring.ANOMALY].head(MAX_ROWS_SHOWN).to_dict("records")
    summary = scoring.summary(scored, model)
    return home(request, file={"summary": summary, "token": token, "filename": filename, "alarms": alarms})


@router.get("/fichier/{token}")
def download(request: Request, token: str) -> Response:
    """The scored CSV of a recent upload (kept in memory, the last few only)."""
    found = request.app.state.downloads.get(token)
    if found is None:
        return error_page(
            request, 404, "résultat introuvable ou expiré : renvoyez le fichier pour l'analyser à nouveau"
        )
    filename, content = found
    headers = {"Content-Disposition": f'attachment; filename="{filename}"'}
    return Response(content, media_type="text/csv; charset=utf-8", headers=headers)
