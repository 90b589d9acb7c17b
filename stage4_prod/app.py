"""Stage 4: production, the API of stage 3 behind API keys, with an audit trail, drift monitoring and live deploys.

    uvicorn stage4_prod.app:app --port 8014 --workers 2     # or: python -m stage4_prod.app
    curl -s http://127.0.0.1:8014/health

``POST /predict`` scores one reading sent as JSON; ``POST /predict/batch`` (a JSON list)
and ``POST /predict/csv`` (an uploaded file) score many, with a result or an error per
row; the WebSocket ``/stream`` scores readings one message at a time, each in the context
of its equipment's previous readings. Every prediction is chained in the audit trail
(``audit.py``) before its answer leaves, then appended to the inference log
(``inference_log.py``). ``GET /models`` lists the registry and says which version is
served (the shared pointer of ``deployment.py``), ``GET /metrics`` counts requests, errors, latency and
predictions since start, ``GET /monitoring`` adds drift and feedback. ``GET /health`` and ``GET /version``
say whether the service is ready and exactly what runs (application, model, commit,
build date); ``/docs`` documents it all in French. Stage 1's web form is still served,
an operator key typed in it. Every other route needs an ``X-API-Key`` whose role allows it (``auth.py``):
401 without a valid key, 403 for the wrong role, 429 over the key's rate. Admins deploy and
roll back a model version while requests keep flowing: each request uses the version the
pointer names when it starts (``deployment.ModelCache``). Everything a person reads
is in French; a mistake they can make gets a French message naming the field and a 4xx
status, never a traceback: an unexpected error answers 500 with the request id only, and
the log holds the trace under that id.
"""

from __future__ import annotations

import io
import itertools
import json
import logging
import re
import secrets
import threading
import time
import uuid
from collections import OrderedDict
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from functools import partial
from html import escape
from operator import itemgetter
from pathlib import Path
from typing import Annotated, Any

import numpy as np
import pandas as pd
import uvicorn
from fastapi import Depends, FastAPI, File, Form, Request, UploadFile, WebSocket
from fastapi.exceptions import HTTPException, RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, Response
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, create_model
from pydantic import ValidationError as PydanticValidationError
from pydantic_core import from_json, to_json
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from common.data import DataError, frame_from_readings, plain_readings, write_csv
from common.incremental import OutOfOrderError
from common.registry import LoadedModel, RegistryError, list_versions, read_metadata
from common.schema import (
    BY_NAME,
    DEFAULT_EQUIPMENT_ID,
    EQUIPMENT_ID,
    EQUIPMENT_ID_MAX_LENGTH,
    EXAMPLE_READING,
    SENSORS,
    TIMESTAMP,
    Sensor,
    ValidationError,
    check_value,
)
from stage4_prod import __version__, audit, auth, deployment, drift, feedback, inference_log, scoring
from stage4_prod.auth import Auditor, Deployer, KeyAdmin, Operator, Principal, Reader, RollbackAdmin, Technician
from stage4_prod.drift import DriftMonitor
from stage4_prod.logging_config import configure_logging
from stage4_prod.middleware import BodySizeLimit, RequestLog, SecurityHeaders, request_id_from
from stage4_prod.monitoring import Metrics, drift_report
from stage4_prod.settings import get_settings

logger = logging.getLogger(__name__)

MAX_DOWNLOADS = 20  # scored files kept in memory for download; the oldest is forgotten first
MAX_ROWS_SHOWN = 50
EQUIPMENT_LABEL = "Identifiant de l'équipement"
NUMBER = 'type="number" step="any"'
TEXT = f'type="text" maxlength="{EQUIPMENT_ID_MAX_LENGTH}"'
HTTP_MESSAGES = {
    400: "requête mal formée : corps illisible (JSON en UTF-8 attendu, ou formulaire multipart pour un fichier)",
    404: "page introuvable",
    405: "méthode non autorisée sur cette adresse",
    415: "type de contenu non pris en charge : envoyez du JSON (en-tête Content-Type: application/json)",
}
# What the json module says (in English) about a syntax error, as a French reader needs it.
JSON_SYNTAX = {
    "Expecting value": "valeur attendue",
    "Expecting ',' delimiter": "virgule attendue",
    "Expecting ':' delimiter": "deux-points attendus",
    "Expecting property name enclosed in double quotes": "nom de champ entre guillemets attendu",
    "Extra data": "texte en trop après le JSON",
    "Unterminated string starting at": "texte entre guillemets jamais fermé",
    "Invalid control character at": "caractère de contrôle interdit dans un texte",
    "Invalid \\escape": "séquence d'échappement invalide",
    "Illegal trailing comma before end of object": "virgule en trop avant la fin de l'objet",
    "Illegal trailing comma before end of array": "virgule en trop avant la fin de la liste",
}
FORM_PATHS = ("/", "/fichier")
FORM_KEY = "api_key"  # the form's field for the operator key (also the stream's fallback query parameter)  # the web form's addresses answer in HTML, every other one in JSON
MULTIPART_MARGIN = 64 * 1024  # room for the multipart envelope around an uploaded file
BATCH_BYTES_PER_ROW = 1024  # a reading is about 300 bytes of JSON: room for spaces and long ids
STREAM_ROUTE = "WS /stream"  # how the metrics name the stream's messages
AUTH_STATUSES = (401, 403, 429)
AUDIT_UNAVAILABLE = (
    "journal d'audit indisponible : la prédiction n'est pas rendue (aucune réponse sans sa trace), réessayez plus tard"
)
LOG_UNAVAILABLE = (
    "journal des inférences indisponible : la prédiction n'est pas rendue (aucune réponse sans sa trace), "
    "réessayez plus tard"
)
CSS = """
body{font-family:system-ui,sans-serif;margin:0;background:#f3f5f8;color:#1d2733}
main{max-width:62rem;margin:1.5rem auto;padding:0 1rem}
section{background:#fff;border-radius:8px;padding:1rem 1.5rem 1.5rem;margin-bottom:1.5rem;box-shadow:0 1px 3px #0003}
.grid{display:grid;grid-template-columns:repeat(auto-fill,minmax(17rem,1fr));gap:.9rem 1.5rem}
label{display:block;font-weight:600;font-size:.9rem;margin-bottom:.2rem}
input{width:100%;box-sizing:border-box;padding:.4rem;font-size:1rem;border:1px solid #9aa5b1;border-radius:4px}
input[aria-invalid=true]{border:2px solid #c62828;background:#fdecea}
small,.note{color:#5f6b7a;font-size:.85rem}
button{margin-top:1rem;padding:.6rem 1.4rem;font-size:1rem;background:#1565c0;color:#fff;border:0;border-radius:4px}
.box{margin-top:1rem;padding:.8rem 1rem;border-radius:6px;border-left:6px solid}
.normal{background:#e8f5e9;border-color:#2e7d32}.anomalie{background:#fdecea;border-color:#c62828}
.error{background:#fff4e5;border-color:#ef6c00}
#decision{font-size:1.6rem}
.scroll{overflow-x:auto}table{border-collapse:collapse;font-size:.8rem;width:100%}
th,td{border-bottom:1px solid #dde3ea;padding:.3rem .4rem;text-align:right}td:first-child{white-space:nowrap}
"""


class ModelUnavailable(Exception):
    """No usable model was found at startup; the message (French) says why."""


class MessageRefused(Exception):
    """A stream message cannot be scored; ``detail`` and ``errors`` (French) say why."""

    def __init__(self, detail: str, errors: list[dict[str, str]] | None = None):
        super().__init__(detail)
        self.detail = detail
        self.errors = errors or []


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


@asynccontextmanager
async def lifespan(app: FastAPI):
    """Read the settings, open the state database and follow the served-model pointer; without a model, 503."""
    settings = app.state.settings = get_settings()
    configure_logging(settings.log_level)
    app.state.downloads = Downloads()
    app.state.metrics = Metrics()
    app.state.auth = auth.Authenticator(settings.state_db, settings.rate_limit_per_s, settings.rate_limit_burst)
    app.state.audit = audit.Recorder(settings.state_db)  # group commit of this process's prediction rows
    app.state.models = deployment.ModelCache(settings.state_db, settings.models_dir, settings.model_check_interval_s)
    app.state.scorers = scoring.Scorers(settings.stream_max_equipments)
    app.state.drift, app.state.model_error = None, None
    drift.warm_up()  # scipy, for the drift window's KS tests, imported in the background
    try:
        app.state.models.start(settings.model_version)  # the first start writes the pointer; later ones follow it
        loaded = served_model(app.state)
        logger.info("service %s ready with model %s", __version__, loaded.version)
    except (RegistryError, audit.AuditUnavailable) as exc:
        app.state.model_error = str(exc)
        logger.error("no model served: %s", exc)
    yield
    app.state.audit.close()


DESCRIPTION = """
Détection d'anomalies sur une pompe industrielle, à partir de huit capteurs.

* `POST /predict` : envoyez **une mesure** en JSON, recevez le score, la décision
  (`Normal` ou `Anomalie`), le seuil d'alarme, la version du modèle et l'identifiant de la requête.
  La mesure est notée seule, sans les précédentes de son équipement.
* `POST /predict/batch` : **une liste de mesures** en JSON (1 000 au plus par défaut, 413 au-delà),
  notées comme une série dans l'ordre reçu ; un résultat **ou** des erreurs par mesure (succès partiel possible).
* `POST /predict/csv` : **un fichier CSV** au format SKAB (champ de formulaire `fichier`) ; un résultat
  par ligne valide, et chaque ligne rejetée avec son numéro et la raison.
* WebSocket `/stream` : **une mesure par message** (avec `equipment_id` et `timestamp`, facultatif :
  maintenant par défaut), le score en réponse, calculé avec les mesures précédentes de l'équipement.
  Un message refusé reçoit une erreur en français ; la connexion reste ouverte.
* `GET /models` : les versions du registre et celle qui est servie (pointeur de déploiement partagé).
* `GET /metrics` : requêtes par route et statut, taux d'erreur, latence (p50, p95, p99), prédictions
  et taux d'anomalies par version du modèle, depuis le démarrage du processus.
* `GET /monitoring` : dérive de chaque capteur (PSI, KS), taux d'alarmes comparé à celui attendu,
  latence et erreurs, retours de la maintenance par version du modèle.
* `POST /feedback` : confirmer ou infirmer une alarme (par identifiant de requête), signaler une panne manquée.
* `GET /audit` : le journal d'audit (qui a prédit quoi, avec quelle version), filtrable, export CSV (`?format=csv`).
* `POST /admin/models/{version}/deploy`, `POST /admin/rollback` : changer de modèle sans interruption.
* `GET`, `POST /admin/keys`, `DELETE /admin/keys/{key_id}` : gérer les clés d'API.
* `GET /health` : le service est-il prêt (modèle chargé) ? Sans clé, pour les sondes et le proxy.
* `GET /version` : versions de l'application et du modèle, commit Git et date de construction de l'image. Sans clé.

**Accès** : chaque autre adresse demande une clé dans l'en-tête `X-API-Key` (`make create-key NAME=... ROLE=...`).
Rôles : `reader` (surveillance), `operator` (prédictions, retours), `auditor` (journal d'audit), `admin`
(déploiement, retour arrière, clés). 401 : clé absente ou inconnue ; 403 : rôle non autorisé ;
429 : trop de requêtes pour cette clé (en-tête `Retry-After`). Le flux `/stream` lit la clé dans l'en-tête
`X-API-Key` de la poignée de main (à défaut, dans le paramètre `api_key` de l'adresse).

Chaque prédiction est inscrite au journal d'audit avant que la réponse parte (503 si c'est impossible :
aucune réponse sans sa trace), puis ajoutée au journal des inférences (un fichier CSV par jour ; 503 aussi
s'il ne peut pas être écrit).

Chaque réponse porte l'en-tête `X-Model-Version` et l'en-tête `X-Request-ID` (celui que vous envoyez, s'il est raisonnable,
sinon un nouveau) : citez-le pour signaler un problème. Les erreurs sont en français :
`{"detail": "...", "errors": [{"field": "...", "message": "..."}], "request_id": "..."}`.
Le formulaire web de l'étape 1 reste disponible à la racine `/`.
"""

app = FastAPI(
    title="Détection d'anomalies sur la pompe (étape 4)",
    description=DESCRIPTION,
    version=__version__,
    lifespan=lifespan,
)


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


# Dependencies and endpoints that do no blocking work are ``async def``: a plain ``def`` costs
# each of them a hop to FastAPI's thread pool and back (0.1 ms of CPU idle on this machine, up to
# 0.8 ms per reading at stage 4 when the work in the thread releases the GIL: more than the work).
# The key check and the model look-up are ``async`` as well: one indexed read on this thread's
# open SQLite connection (WAL: a reader never waits for a writer), and a model cached between two
# checks of the deployment pointer. A commit of the audit trail may wait for another process's
# write lock, or for an ``fsync`` with AUDIT_SYNC=FULL, and must not stop the event loop:
# ``POST /predict`` and the form are ``async`` and hand only the commit to the audit recorder's
# writer thread (``trace_reading``); the routes that score a batch or a file stay plain ``def``
# (run in the thread pool).
async def get_model(request: Request) -> LoadedModel:
    return model_of(request)


async def get_request_id(request: Request) -> str:
    return request.state.request_id  # set by RequestLog before anything else runs


ModelDep = Annotated[LoadedModel, Depends(get_model)]
RequestId = Annotated[str, Depends(get_request_id)]
# Every field is optional text: a missing or wrong value is reported by us, in French, naming the field.
ReadingForm = create_model(
    "ReadingForm", equipment_id=(str, ""), api_key=(str, ""), **{s.name: (str, "") for s in SENSORS}
)


# ---- HTML building blocks -------------------------------------------------------------------------


def page(body: str, status_code: int = 200) -> HTMLResponse:
    """A complete French HTML page around ``body`` (already escaped)."""
    return HTMLResponse(
        '<!doctype html><html lang="fr"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>Détection d'anomalies – pompe</title><style>{CSS}</style></head>"
        f"<body><main><h1>Détection d'anomalies sur la pompe</h1>{body}</main></body></html>",
        status_code=status_code,
    )


def error_box(*messages: str) -> str:
    items = "".join(f"<li>{escape(m)}</li>" for m in messages)
    return f'<div class="box error" role="alert"><ul>{items}</ul></div>'


def error_page(status_code: int, *messages: str) -> HTMLResponse:
    return page(f'<section>{error_box(*messages)}<p><a href="/">Retour au formulaire</a></p></section>', status_code)


def field(name: str, label: str, attrs: str, value: str, hint: str, invalid: bool) -> str:
    """A labelled input with a hint below it; ``attrs`` (type, step...) are fixed text, not user data."""
    return (
        f'<div><label for="{name}">{escape(label)}</label><input id="{name}" name="{name}" {attrs} '
        f'value="{escape(value)}" aria-invalid="{str(invalid).lower()}"><small>{escape(hint)}</small></div>'
    )


def plausible(sensor: Sensor) -> str:
    return f"plage plausible : {sensor.low:g} à {sensor.high:g} {sensor.unit}"


def reading_section(values: dict[str, str], errors: dict[str, str], result: str = "") -> str:
    """The one-reading form, pre-filled with ``values``, followed by errors or the result."""
    fields = [
        field(s.name, f"{s.label} ({s.unit})", NUMBER, values[s.name], plausible(s), s.name in errors) for s in SENSORS
    ]
    hint, invalid = f"par défaut : {DEFAULT_EQUIPMENT_ID}", EQUIPMENT_ID in errors
    fields.append(field(EQUIPMENT_ID, f"{EQUIPMENT_LABEL} (facultatif)", TEXT, values[EQUIPMENT_ID], hint, invalid))
    fields.append(key_field("mesure"))
    outcome = error_box(*errors.values()) if errors else result
    return (
        '<section id="mesure"><h2>Une mesure</h2><p class="note">Saisissez les valeurs des capteurs '
        "(virgule ou point décimal), puis cliquez sur « Analyser la mesure ».</p>"
        f'<form method="post" action="/#mesure"><div class="grid">{"".join(fields)}</div>'
        f'<button type="submit">Analyser la mesure</button></form>{outcome}</section>'
    )


def reading_result(result: dict[str, Any], equipment_id: str) -> str:
    css = "anomalie" if result["decision"] == scoring.ANOMALY else "normal"
    return (
        f'<div class="box {css}" id="resultat"><p>Décision : '
        f'<strong id="decision">{escape(result["decision"])}</strong></p>'
        f"<p>Score {result['score']:.3f} (seuil d'alarme {result['threshold']:.3f} : au-delà, anomalie) – "
        f"équipement {escape(equipment_id)} – modèle {escape(result['model_version'])}</p></div>"
    )


def key_field(form: str) -> str:
    """The operator key, typed by the person (a browser form cannot send a header); never written back."""
    return (
        f'<div><label for="{FORM_KEY}-{form}">Clé d\'API (rôle operator)</label><input id="{FORM_KEY}-{form}" '
        f'name="{FORM_KEY}" type="password" autocomplete="off" required></div>'
    )


def form_operator(request: Request, key: str) -> Principal:
    """The operator who typed ``key`` in a form; HTTPException 401, 403 or 429 (a French page) otherwise."""
    try:
        principal = request.app.state.auth.check(key.strip() or None, "predict")
    except auth.AuthError as exc:
        raise HTTPException(exc.status, exc.detail, exc.headers) from None
    request.state.principal = principal
    return principal


def size(n_bytes: int) -> str:
    return f"{n_bytes / 2**20:g} Mo" if n_bytes >= 2**20 else f"{n_bytes} octets"


def file_section(outcome: str, limit: int) -> str:
    return (
        '<section id="fichier"><h2>Un fichier de mesures</h2><p class="note">Fichier CSV au format SKAB : '
        "séparateur « ; », colonne datetime (AAAA-MM-JJ hh:mm:ss) puis les huit capteurs, encodage UTF-8, "
        f"{size(limit)} au plus.</p>"
        '<form method="post" action="/fichier#fichier" enctype="multipart/form-data">'
        f'<div class="grid">{key_field("fichier")}</div>'
        '<input type="file" name="fichier" accept=".csv,text/csv">'
        f'<button type="submit">Analyser le fichier</button></form>{outcome}</section>'
    )


def anomaly_table(scored: pd.DataFrame) -> str:
    """The first anomalous rows of a scored file, as an HTML table."""
    rows = scored[scored["decision"] == scoring.ANOMALY].head(MAX_ROWS_SHOWN)
    if rows.empty:
        return ""
    head = "".join(f"<th>{escape(s.label)} ({escape(s.unit)})</th>" for s in SENSORS)
    body = "".join(
        f"<tr><td>{escape(str(r[TIMESTAMP]))}</td><td>{r['score']:.3f}</td><td>{escape(str(r[EQUIPMENT_ID]))}</td>"
        + "".join(f"<td>{r[s.name]:.4g}</td>" for s in SENSORS)
        + "</tr>"
        for _, r in rows.iterrows()
    )
    return (
        f'<h3>Mesures anormales (les {MAX_ROWS_SHOWN} premières au plus)</h3><div class="scroll"><table>'
        f"<tr><th>Date</th><th>Score</th><th>Équipement</th>{head}</tr>{body}</table></div>"
    )


def file_result(scored: pd.DataFrame, summary: str, token: str, filename: str) -> str:
    lines = "".join(f"<p>{escape(line)}</p>" for line in summary.splitlines())
    css = "anomalie" if (scored["decision"] == scoring.ANOMALY).any() else "normal"
    return (
        f'<div class="box {css}" id="resultat-fichier">{lines}<p><a href="/fichier/{escape(token)}" '
        f'download="{escape(filename)}">Télécharger le fichier avec les scores ({escape(filename)})</a></p></div>'
        + anomaly_table(scored)
    )


def home(
    request: Request,
    values: dict[str, str] | None = None,
    errors: dict[str, str] | None = None,
    result: str = "",
    file_outcome: str = "",
    status_code: int = 200,
) -> HTMLResponse:
    """The page with both forms; ``values`` default to an example of a normal reading."""
    values = values or {**{k: f"{v:g}" for k, v in EXAMPLE_READING.items()}, EQUIPMENT_ID: ""}
    limit = request.app.state.settings.max_upload_bytes
    return page(reading_section(values, errors or {}, result) + file_section(file_outcome, limit), status_code)


# ---- Reading the inputs ---------------------------------------------------------------------------


def parse_number(name: str, text: str) -> float:
    """Form text to a checked float, accepting a French decimal comma ("0,027").

    Raises ValidationError naming the field if the text is empty, not a number, NaN,
    infinite or outside the sensor's plausible range.
    """
    cleaned = text.strip().replace(",", ".")
    if not cleaned:
        raise ValidationError(name, "valeur manquante")
    try:
        value = float(cleaned)
    except ValueError:
        raise ValidationError(name, f"« {text.strip()} » n'est pas un nombre") from None
    return check_value(name, value)


def download_name(uploaded: str | None) -> str:
    """A safe file name for the scored copy of an uploaded file."""
    stem = re.sub(r"[^A-Za-z0-9_.-]", "_", Path(uploaded or "").stem)[:80]
    return f"{stem or 'mesures'}_scores.csv"


def scored_csv(scored: pd.DataFrame) -> bytes:
    """The scored frame in SKAB's format; the equipment column only if it says something."""
    buffer = io.StringIO()
    write_csv(scored, buffer, with_equipment=set(scored[EQUIPMENT_ID]) != {DEFAULT_EQUIPMENT_ID})
    return buffer.getvalue().encode("utf-8")


async def require_json(request: Request) -> None:
    """Refuse (415) a body that is not declared as JSON, before reading it as one."""
    media_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media_type != "application/json":
        raise HTTPException(415)


def shown(value: Any) -> str:
    """A received value as the client wrote it in JSON (``"0.5"``, ``true``, ``null``)."""
    return json.dumps(value, ensure_ascii=False) if not isinstance(value, float) else f"{value:g}"


def field_error(error: dict[str, Any]) -> dict[str, str]:
    """One pydantic error, in French, naming the field (``body``: the whole request).

    Sensor values are judged by ``common.schema.check_value``, so the API, the form, the
    command line and the CSV loader word the same mistake the same way.
    """
    kind, value, ctx = error["type"], error.get("input"), error.get("ctx", {})
    path = [str(p) for p in error["loc"][1:] if not isinstance(p, int)] if error["loc"][:1] == ("body",) else []
    name = ".".join(path) or "body"
    if name in BY_NAME and kind in ("float_type", "finite_number", "value_error", "missing"):
        try:
            check_value(name, None if kind == "missing" else value)
            text = "valeur refusée"
        except ValidationError as exc:
            text = exc.message + (" (un nombre JSON s'écrit sans guillemets)" if isinstance(value, str) else "")
        return {"field": name, "message": f"{BY_NAME[name].label} ({name}) : {text}"}
    if kind == "json_invalid":
        problem = JSON_SYNTAX.get(ctx.get("error", ""), "erreur de syntaxe")
        text = f"JSON mal formé ({problem}, caractère {error['loc'][-1]})"
    elif kind == "missing":
        text = (
            "corps de requête manquant : une mesure en JSON est attendue"
            if name == "body"
            else "champ obligatoire manquant"
        )
    elif kind == "extra_forbidden":
        text = "champ inconnu (vérifiez l'orthographe ; voir /docs pour la liste des champs)"
    elif kind == "list_type":
        text = f"une liste JSON de mesures est attendue, reçu {shown(value)[:80]}"
    elif kind in ("model_type", "model_attributes_type", "dict_type"):
        text = f"un objet JSON est attendu, reçu {shown(value)[:80]}"
    elif kind == "string_type":
        text = f"texte attendu, reçu {shown(value)[:80]}"
    elif kind in ("string_too_long", "string_too_short"):
        text = f"longueur de 1 à {EQUIPMENT_ID_MAX_LENGTH} caractères attendue"
    elif kind.startswith("datetime"):
        text = f"date « {shown(value)[:80]} » illisible (attendu AAAA-MM-JJThh:mm:ss, ISO 8601)"
    else:
        text = f"valeur refusée ({kind})"
    return {"field": name, "message": f"{name} : {text}"}


def reading_errors(exc: PydanticValidationError) -> list[dict[str, str]]:
    """The French errors of one reading validated outside a request body (batch item, stream message)."""
    return [field_error({**e, "loc": ("body", *e["loc"])}) for e in exc.errors()]


def to_fix(errors: list[dict[str, str]]) -> str:
    return ", ".join(dict.fromkeys(e["field"] for e in errors))


def utc_naive(value: datetime | None) -> datetime | None:
    """A timestamp with a time zone, converted to UTC and stored without it (as in the CSV files)."""
    return value.astimezone(UTC).replace(tzinfo=None) if value and value.tzinfo else value


# ---- The JSON API's bodies ------------------------------------------------------------------------


def sensor_field(sensor: Sensor) -> Any:
    """A strict float (no numeric string, no boolean, no NaN or infinity) checked by common.schema.

    The range is checked by ``check_value``, the one place it is defined; the schema only
    shows it to the reader of /docs.
    """
    return Annotated[
        float,
        Field(
            strict=True,
            allow_inf_nan=False,
            description=f"{sensor.label}, en {sensor.unit} ({plausible(sensor)})",
            json_schema_extra={"minimum": sensor.low, "maximum": sensor.high},
            examples=[EXAMPLE_READING[sensor.name]],
        ),
        AfterValidator(partial(check_value, sensor.name)),
    ]


Reading = create_model(
    "Reading",
    __config__=ConfigDict(
        extra="forbid",
        title="Mesure",
        json_schema_extra={"examples": [{**EXAMPLE_READING, EQUIPMENT_ID: DEFAULT_EQUIPMENT_ID}]},
    ),
    __doc__="Une mesure des huit capteurs de la pompe ; tout champ inconnu est refusé.",
    **{s.name: (sensor_field(s), ...) for s in SENSORS},
    equipment_id=(
        str,
        Field(DEFAULT_EQUIPMENT_ID, min_length=1, max_length=EQUIPMENT_ID_MAX_LENGTH, description=EQUIPMENT_LABEL),
    ),
    timestamp=(
        Annotated[datetime | None, AfterValidator(utc_naive)],
        Field(None, description="Date et heure de la mesure (ISO 8601, UTC si sans fuseau) ; par défaut : maintenant."),
    ),
)


class Prediction(BaseModel):
    """Le résultat d'une mesure."""

    score: float = Field(description="Plus il est élevé, plus la mesure s'écarte du fonctionnement normal appris.")
    decision: str = Field(description="« Anomalie » si le score dépasse le seuil, sinon « Normal ».")
    threshold: float = Field(description="Seuil d'alarme, fixé à l'entraînement sur des données normales.")
    model_version: str = Field(description="Version du modèle qui a calculé le score.")
    equipment_id: str = Field(description=EQUIPMENT_LABEL)
    request_id: str = Field(description="Identifiant de la requête, à citer pour signaler un problème.")


class Health(BaseModel):
    """L'état du service."""

    status: str = Field(description="« ok » si le service répond avec un modèle chargé.")
    model_version: str | None = Field(description="Version du modèle chargé.")


class VersionInfo(BaseModel):
    """Ce qui tourne exactement : de quoi reproduire un résultat ou signaler un problème."""

    app_version: str = Field(description="Version du service (numéro sémantique choisi par l'équipe).")
    model_version: str | None = Field(description="Version du modèle chargé (null si aucun).")
    git_commit: str = Field(description="Commit Git du code de l'image.")
    build_date: str = Field(description="Date de construction de l'image (UTC).")


class FieldError(BaseModel):
    field: str = Field(description="Le champ à corriger (« body » : la requête entière).")
    message: str = Field(description="Ce qui ne va pas, en français.")


class ErrorBody(BaseModel):
    """Une erreur : message en français, champs à corriger le cas échéant, identifiant de la requête."""

    detail: str
    errors: list[FieldError] = []
    request_id: str


class BatchItem(BaseModel):
    """Le résultat d'une mesure d'un lot : score et décision, ou les erreurs qui l'ont fait refuser."""

    index: int = Field(description="Position de la mesure dans la liste envoyée (à partir de 0).")
    score: float | None = None
    decision: str | None = None
    equipment_id: str | None = None
    errors: list[FieldError] | None = None


class BatchResult(BaseModel):
    """Le résultat d'un lot de mesures."""

    model_version: str
    threshold: float
    request_id: str
    received: int = Field(description="Mesures reçues.")
    scored: int = Field(description="Mesures notées.")
    rejected: int = Field(description="Mesures refusées (voir « errors » de chacune).")
    anomalies: int
    results: list[BatchItem]


class CsvRow(BaseModel):
    line: int = Field(description="Ligne du fichier (l'en-tête est la ligne 1).")
    timestamp: str
    equipment_id: str
    score: float
    decision: str


class CsvReject(BaseModel):
    line: int = Field(description="Ligne du fichier (l'en-tête est la ligne 1).")
    reason: str = Field(description="Raison du refus, en français, qui nomme le champ.")
    content: str = Field(description="La ligne telle qu'elle a été lue.")


class CsvResult(BaseModel):
    """Le résultat d'un fichier : chaque ligne notée, chaque ligne rejetée avec sa raison."""

    model_version: str
    threshold: float
    request_id: str
    filename: str
    scored: int
    rejected: int
    anomalies: int
    results: list[CsvRow]
    rejects: list[CsvReject]


class ModelInfo(BaseModel):
    version: str
    created_at: str
    git_commit: str
    threshold: float
    training_rows: int
    sha256: str = Field(description="Début de l'empreinte sha256 de l'artefact (vérifiée au chargement).")
    served: bool = Field(description="Version servie par ce service.")


class ModelList(BaseModel):
    """Les versions du registre, de la plus ancienne à la plus récente."""

    served: str | None = Field(description="Version servie (variable MODEL_VERSION, sinon la plus récente).")
    models: list[ModelInfo]


def error_doc(description: str) -> dict[str, Any]:
    return {"model": ErrorBody, "description": description}


KEY_ERRORS = {  # every route that needs a key (auth.require)
    401: error_doc("Clé d'API absente, inconnue, mal formée ou révoquée."),
    403: error_doc("Clé valide, mais son rôle n'autorise pas cette action."),
    429: error_doc("Trop de requêtes pour cette clé : réessayez après le délai de l'en-tête Retry-After."),
}
JSON_BODY_ERRORS = {
    400: error_doc("Corps illisible : le JSON n'est pas un texte UTF-8."),
    413: error_doc("Corps de requête trop volumineux."),
}


# ---- Keeping a trace of every prediction ----------------------------------------------------------


def elapsed_ms(start: float) -> float:
    return (time.perf_counter() - start) * 1000


def trace(
    state: Any,
    who: Principal,
    client: str | None,
    source: str,
    request_id: str,
    scored: pd.DataFrame,
    latency_ms: float,
) -> None:
    """Audit scored readings (group commit: committed before the caller answers), then append them to
    the inference log, count them in the metrics and feed the drift window (``state``: app.state).

    Raises audit.AuditUnavailable if the audit trail cannot be written: the caller must not answer.
    """
    state.audit.record_predictions(scoring.audit_rows(who.name, client, source, request_id, scored))
    inference_log.record(state.settings.log_dir, source, request_id, scored, latency_ms)
    state.metrics.record_predictions(scored)
    if state.drift is not None:
        state.drift.observe(scored, scored["decision"].tolist())


async def trace_reading(
    state: Any,
    who: Principal,
    client: str | None,
    source: str,
    request_id: str,
    reading: dict[str, Any],
    result: dict[str, Any],
    latency_ms: float,
) -> None:
    """``trace`` for one reading scored alone (``reading`` with its ``timestamp``, ``result`` of
    ``scoring.score_reading``), without a frame, from the event loop: the audit row is committed
    by the recorder's writer thread, the one log line is appended here, as at stage 3.

    Raises audit.AuditUnavailable if the audit trail cannot be written: the caller must not answer.
    """
    row = scoring.audit_row(who.name, client, source, request_id, reading, result)
    await state.audit.record_predictions_async([row])
    inference_log.record_reading(state.settings.log_dir, source, request_id, reading, result, latency_ms)
    state.metrics.record_decisions([(result["model_version"], result["decision"])])
    if state.drift is not None:
        state.drift.observe([reading], [result["decision"]])


def client_address(request: Request | WebSocket) -> str | None:
    return request.client.host if request.client else None


def stamped(reading: dict[str, Any]) -> dict[str, Any]:
    """``reading`` with a timestamp: its own (UTC, without zone), else now, as the frames stamp it."""
    return {**reading, TIMESTAMP: reading.get(TIMESTAMP) or datetime.now(UTC).replace(tzinfo=None)}


# ---- Routes ---------------------------------------------------------------------------------------


@app.get("/", response_class=HTMLResponse, include_in_schema=False)
def show_form(request: Request, model: ModelDep) -> HTMLResponse:
    return home(request)


@app.post("/", response_class=HTMLResponse, include_in_schema=False)
async def score_form(request: Request, model: ModelDep, form: Annotated[ReadingForm, Form()]) -> HTMLResponse:
    """Score the typed reading, or show which values to fix (422); the operator key first (401, 403, 429)."""
    raw = form.model_dump()
    who = form_operator(request, raw.pop(FORM_KEY))
    values, shown, errors = {}, {EQUIPMENT_ID: raw[EQUIPMENT_ID]}, {}
    for s in SENSORS:
        try:
            values[s.name] = parse_number(s.name, raw[s.name])
            shown[s.name] = repr(values[s.name]).removesuffix(".0")  # a number input drops a decimal comma
        except ValidationError as exc:
            shown[s.name], errors[s.name] = raw[s.name], f"{s.label} ({s.name}) : {exc.message}"
    equipment_id = raw[EQUIPMENT_ID].strip() or DEFAULT_EQUIPMENT_ID
    if len(equipment_id) > EQUIPMENT_ID_MAX_LENGTH:
        errors[EQUIPMENT_ID] = f"{EQUIPMENT_LABEL} ({EQUIPMENT_ID}) : {EQUIPMENT_ID_MAX_LENGTH} caractères au plus"
    if errors:
        return home(request, shown, errors, status_code=422)
    start = time.perf_counter()
    result = scoring.score_reading(model, values)
    reading = stamped({**values, EQUIPMENT_ID: equipment_id})
    client, request_id = client_address(request), request.state.request_id
    await trace_reading(request.app.state, who, client, "form", request_id, reading, result, elapsed_ms(start))
    return home(request, shown, result=reading_result(result, equipment_id))


@app.post("/fichier", response_class=HTMLResponse, include_in_schema=False)
def score_upload(
    request: Request, model: ModelDep, fichier: Annotated[UploadFile, File()], api_key: Annotated[str, Form()] = ""
) -> HTMLResponse:
    """Score an uploaded SKAB-format CSV: summary, anomalous rows and a download link."""
    who = form_operator(request, api_key)
    limit = request.app.state.settings.max_upload_bytes
    data = fichier.file.read(limit + 1)
    name = fichier.filename or "sans nom"
    if len(data) > limit:
        message = f"fichier « {name} » trop volumineux : {size(limit)} au plus"
        return home(request, file_outcome=error_box(message), status_code=413)
    start = time.perf_counter()
    try:
        scored = scoring.score_file(model, data)
    except DataError as exc:
        return home(request, file_outcome=error_box(f"fichier « {name} » refusé : {exc}"), status_code=422)
    traced = scored.assign(model_version=model.version)
    trace(
        request.app.state,
        who,
        client_address(request),
        "form_file",
        request.state.request_id,
        traced,
        elapsed_ms(start),
    )
    filename = download_name(fichier.filename)
    token = request.app.state.downloads.add(filename, scored_csv(scored))
    return home(request, file_outcome=file_result(scored, scoring.summary(scored, model), token, filename))


@app.get("/fichier/{token}", include_in_schema=False)
def download(request: Request, token: str) -> Response:
    """The scored CSV of a recent upload (kept in memory, the last few only)."""
    found = request.app.state.downloads.get(token)
    if found is None:
        return error_page(404, "résultat introuvable ou expiré : renvoyez le fichier pour l'analyser à nouveau")
    filename, content = found
    headers = {"Content-Disposition": f'attachment; filename="{filename}"'}
    return Response(content, media_type="text/csv; charset=utf-8", headers=headers)


@app.get(
    "/health",
    summary="Le service est-il prêt ?",
    response_model=Health,
    responses={503: error_doc("Aucun modèle chargé, ou journal d'audit ou des inférences impossible à écrire.")},
)
def health(request: Request) -> Any:
    """200 avec la version du modèle chargé si le service peut prédire et tracer ses prédictions, 503 sinon."""
    model, settings = model_of(request), request.app.state.settings
    for directory, what in (
        (settings.state_db.parent, "le journal d'audit"),
        (settings.log_dir, "le journal des inférences"),
    ):
        try:
            inference_log.check_writable(directory)
        except inference_log.LogUnavailable as exc:
            return error_response(request, 503, f"le service ne peut pas écrire {what} : {exc}")
    return Health(status="ok", model_version=model.version)


@app.get("/version", summary="Ce qui tourne exactement", response_model=VersionInfo)
async def version(request: Request) -> VersionInfo:
    """Versions de l'application et du modèle, commit Git et date de construction de l'image."""
    settings = request.app.state.settings
    return VersionInfo(
        app_version=__version__,
        model_version=request.app.state.models.version,
        git_commit=settings.git_commit,
        build_date=settings.build_date,
    )


@app.post(
    "/predict",
    summary="Analyser une mesure",
    response_model=Prediction,
    dependencies=[Depends(require_json)],
    responses={
        **KEY_ERRORS,
        400: error_doc("Corps illisible : le JSON n'est pas un texte UTF-8."),
        413: error_doc("Corps de requête trop volumineux."),
        415: error_doc("Le corps n'est pas déclaré comme JSON."),
        422: error_doc("Mesure refusée : chaque champ à corriger est nommé, avec la raison."),
        503: error_doc("Aucun modèle chargé."),
    },
)
async def predict(
    request: Request, who: Operator, reading: Reading, model: ModelDep, request_id: RequestId
) -> Prediction:
    """Score, décision (`Normal` ou `Anomalie`), seuil et version du modèle pour une mesure.

    Les huit capteurs sont obligatoires, en nombres JSON finis dans leur plage plausible ;
    `equipment_id` et `timestamp` sont facultatifs. Tout autre champ est refusé. La mesure
    est notée seule : pour tenir compte des précédentes d'un équipement, utilisez `/stream`.
    """
    start = time.perf_counter()
    values = stamped(reading.model_dump())
    result = scoring.score_reading(model, values)
    await trace_reading(
        request.app.state, who, client_address(request), "api", request_id, values, result, elapsed_ms(start)
    )
    return Prediction(**result, equipment_id=values[EQUIPMENT_ID], request_id=request_id)


BATCH_BODY = {  # what /docs shows: the endpoint reads and checks its body itself (``batch_items``)
    "required": True,
    "content": {
        "application/json": {
            "schema": {
                "type": "array",
                "items": {},
                "title": "Readings",
                "examples": [[EXAMPLE_READING, {**EXAMPLE_READING, "pressure": 150}]],
            }
        }
    },
}


async def raw_body(request: Request) -> bytes:
    return await request.body()


def batch_items(body: bytes) -> list[Any]:
    """The batch body as a JSON list, or the 422 (400) FastAPI itself answers for a body it reads.

    Parsed by pydantic's JSON reader (several times faster than the standard library's on a
    batch); what it refuses is read again by the standard library, which decides and words
    the error exactly as FastAPI does.
    """
    if not body:
        raise RequestValidationError([{"type": "missing", "loc": ("body",), "msg": "Field required", "input": None}])
    try:
        items = from_json(body)
    except ValueError:
        try:
            items = json.loads(body)
        except json.JSONDecodeError as exc:
            error = {"type": "json_invalid", "loc": ("body", exc.pos), "msg": "JSON decode error", "input": {}}
            raise RequestValidationError([{**error, "ctx": {"error": exc.msg}}]) from None
        except ValueError:  # not UTF-8
            raise HTTPException(400) from None
    if type(items) is not list:
        raise RequestValidationError([{"type": "list_type", "loc": ("body",), "msg": "not a list", "input": items}])
    return items


def validate_batch(items: list[Any]) -> tuple[pd.DataFrame, dict[int, list[dict[str, str]]]]:
    """The valid readings of a batch as a sensor frame indexed by position, and the errors of the others.

    Plain readings are checked column by column (``common.data.plain_readings``); the
    others, one by one by the same model as ``POST /predict``, which words each refusal or
    accepts the reading (a timestamp with a time zone, for example).
    """
    frame, others = plain_readings(items)
    errors, accepted, positions = {}, [], []
    for i in others.tolist():
        try:
            accepted.append(Reading.model_validate(items[i]).model_dump())
            positions.append(i)
        except PydanticValidationError as exc:
            errors[i] = reading_errors(exc)
    if accepted:
        frame = pd.concat([frame, frame_from_readings(accepted).set_axis(positions)]).sort_index()
    return frame, errors


def json_response(content: Any) -> Response:
    """JSON written by pydantic's serializer: what JSONResponse writes, several times faster on a large body."""
    return Response(to_json(content), media_type="application/json")


@app.post(
    "/predict/batch",
    summary="Analyser un lot de mesures",
    response_model=BatchResult,
    response_model_exclude_none=True,
    dependencies=[Depends(require_json)],
    responses={
        **KEY_ERRORS,
        400: error_doc("Corps illisible : le JSON n'est pas un texte UTF-8."),
        413: error_doc("Trop de mesures dans le lot, ou corps trop volumineux."),
        415: error_doc("Le corps n'est pas déclaré comme JSON."),
        422: error_doc("Le corps n'est pas une liste JSON."),
        503: error_doc("Aucun modèle chargé."),
    },
    openapi_extra={"requestBody": BATCH_BODY},
)
def predict_batch(
    request: Request,
    who: Operator,
    body: Annotated[bytes, Depends(raw_body)],
    model: ModelDep,
    request_id: RequestId,
) -> Any:
    """Un résultat par mesure, dans l'ordre de la liste : score et décision, ou les erreurs qui la font refuser.

    Chaque mesure suit le format de `POST /predict`. Les mesures valides sont notées comme une
    série, dans l'ordre reçu (par équipement) ; une mesure refusée n'empêche pas les autres
    d'être notées (statut 200). Au-delà de `MAX_BATCH_ROWS` mesures (1 000 par défaut) : 413.
    """
    readings = batch_items(body)
    limit = request.app.state.settings.max_batch_rows
    if len(readings) > limit:
        return error_response(
            request, 413, f"lot trop grand : {len(readings)} mesures reçues, {limit} au plus par requête"
        )
    start = time.perf_counter()
    frame, errors = validate_batch(readings)
    scored = scoring.with_scores(frame, model.model.score(frame) if len(frame) else np.empty(0), model)
    if len(scored):
        trace(request.app.state, who, client_address(request), "api_batch", request_id, scored, elapsed_ms(start))
    # The answer is built as plain data, not 1,000 BatchItem objects: the JSON of BatchResult without nulls.
    decisions = scored["decision"].tolist()
    columns = (scored.index.tolist(), scored["score"].tolist(), decisions, scored[EQUIPMENT_ID].tolist())
    results = [{"index": i, "score": s, "decision": d, "equipment_id": e} for i, s, d, e in zip(*columns, strict=True)]
    if errors:
        results = sorted(results + [{"index": i, "errors": e} for i, e in errors.items()], key=itemgetter("index"))
    return json_response(
        {
            "model_version": model.version,
            "threshold": model.model.threshold_,
            "request_id": request_id,
            "received": len(readings),
            "scored": len(scored),
            "rejected": len(errors),
            "anomalies": decisions.count(scoring.ANOMALY),
            "results": results,
        }
    )


@app.post(
    "/predict/csv",
    summary="Analyser un fichier CSV",
    response_model=CsvResult,
    responses={
        **KEY_ERRORS,
        400: error_doc("Envoi multipart illisible (enveloppe cassée)."),
        413: error_doc("Fichier trop volumineux."),
        422: error_doc("Fichier inutilisable (vide, mauvais séparateur, colonne manquante, encodage)."),
        503: error_doc("Aucun modèle chargé."),
    },
)
def predict_csv(
    request: Request,
    who: Operator,
    fichier: Annotated[UploadFile, File(description="CSV au format SKAB (séparateur « ; », UTF-8).")],
    model: ModelDep,
    request_id: RequestId,
) -> Any:
    """Chaque ligne valide notée (dans le contexte des précédentes de son équipement), chaque ligne rejetée avec sa raison.

    Les erreurs qui touchent tout le fichier (vide, séparateur, colonne manquante, encodage) le
    font refuser (422) ; une ligne invalide (valeur non numérique, hors plage ou manquante, date
    illisible, horodatage non croissant) est rejetée avec son numéro et la raison, les autres
    sont notées.
    """
    limit = request.app.state.settings.max_upload_bytes
    data = fichier.file.read(limit + 1)
    name = fichier.filename or "sans nom"
    if len(data) > limit:
        return error_response(request, 413, f"fichier « {name} » trop volumineux : {size(limit)} au plus")
    start = time.perf_counter()
    try:
        chunks = list(scoring.score_chunks(model, data))
    except DataError as exc:
        return error_response(request, 422, f"fichier « {name} » refusé : {exc}")
    scored = pd.concat([c[0] for c in chunks])
    rejects = pd.concat([c[1] for c in chunks], ignore_index=True)
    trace(request.app.state, who, client_address(request), "api_csv", request_id, scored, elapsed_ms(start))
    stamps = scored[TIMESTAMP].dt.strftime("%Y-%m-%d %H:%M:%S")
    # Plain data rather than a CsvRow per line (10,000 for a day of readings): the JSON of CsvResult.
    columns = (scored.index, stamps, scored[EQUIPMENT_ID], scored["score"], scored["decision"])
    return json_response(
        {
            "model_version": model.version,
            "threshold": model.model.threshold_,
            "request_id": request_id,
            "filename": name,
            "scored": len(scored),
            "rejected": len(rejects),
            "anomalies": int((scored["decision"] == scoring.ANOMALY).sum()),
            "results": [
                {"line": line, "timestamp": t, "equipment_id": e, "score": sc, "decision": d}
                for line, t, e, sc, d in zip(*(c.tolist() for c in columns), strict=True)
            ],
            "rejects": [
                {"line": int(line), "reason": reason, "content": content}
                for line, reason, content in rejects.itertuples(index=False)
            ],
        }
    )


def score_message(state: Any, text: str) -> pd.DataFrame:
    """Validate one stream message and score it after its equipment's previous readings, with the served version.

    Raises MessageRefused (French) if the message is too large, not JSON, not a valid
    reading, or not later than the previous reading of its equipment.
    """
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
        reading = Reading.model_validate(payload)
    except PydanticValidationError as exc:
        errors = reading_errors(exc)
        raise MessageRefused(f"mesure refusée, à corriger : {to_fix(errors)}", errors) from None
    frame = frame_from_readings([reading.model_dump()])
    try:
        scores = state.scorers.get(loaded).score(frame)
    except OutOfOrderError as exc:
        raise MessageRefused(
            f"mesure refusée, à corriger : {TIMESTAMP}", [{"field": TIMESTAMP, "message": str(exc)}]
        ) from None
    return scoring.with_scores(frame, scores, loaded).assign(threshold=loaded.model.threshold_)


def stream_answer(state: Any, who: Principal, client: str | None, request_id: str, text: str) -> dict[str, Any]:
    """The answer to one stream message: its score, or why it was refused; audited, traced and counted."""
    start = time.perf_counter()
    try:
        scored = score_message(state, text)
        trace(state, who, client, "stream", request_id, scored.drop(columns="threshold"), elapsed_ms(start))
    except MessageRefused as exc:
        state.metrics.record_request(STREAM_ROUTE, 422, elapsed_ms(start))
        return {"detail": exc.detail, "errors": exc.errors, "request_id": request_id}
    except audit.AuditUnavailable as exc:
        logger.error("stream reading not answered, audit trail unavailable: %s", exc)
        state.metrics.record_request(STREAM_ROUTE, 503, elapsed_ms(start))
        return {"detail": AUDIT_UNAVAILABLE, "errors": [], "request_id": request_id}
    except inference_log.LogUnavailable as exc:
        logger.error("stream reading not answered, inference log unavailable: %s", exc)
        state.metrics.record_request(STREAM_ROUTE, 503, elapsed_ms(start))
        return {"detail": LOG_UNAVAILABLE, "errors": [], "request_id": request_id}
    state.metrics.record_request(STREAM_ROUTE, 200, elapsed_ms(start))
    row = scored.iloc[0]
    return {
        "score": float(row["score"]),
        "decision": row["decision"],
        "threshold": float(row["threshold"]),
        "model_version": row["model_version"],
        "equipment_id": row[EQUIPMENT_ID],
        "timestamp": row[TIMESTAMP].isoformat(),
        "request_id": request_id,
    }


async def refuse_handshake(websocket: WebSocket, status: int, detail: str, headers: dict[str, str]) -> None:
    body = {"detail": detail, "errors": [], "request_id": uuid.uuid4().hex}
    if "websocket.http.response" in websocket.scope.get("extensions", {}):
        await websocket.send_denial_response(JSONResponse(body, status_code=status, headers=headers))
    else:
        await websocket.close(code=1008, reason=detail[:120])


@app.websocket("/stream")
async def stream(websocket: WebSocket) -> None:
    """One reading per message in (JSON text), one answer per message out; a refusal keeps the connection open.

    The operator key is checked once, at the handshake: header ``X-API-Key`` (preferred: a
    query string ends up in proxies' logs), else the ``api_key`` query parameter. A refused
    handshake gets an HTTP answer (401, 403, 429) where the server supports it, else close code 1008.
    """
    key = websocket.headers.get(auth.HEADER) or websocket.query_params.get(FORM_KEY)
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
        answer = await run_in_threadpool(
            stream_answer, websocket.app.state, who, client_address(websocket), request_id, text
        )
        await websocket.send_json(answer)


@app.get("/models", summary="Les versions du modèle", response_model=ModelList, responses=KEY_ERRORS)
def models(request: Request, who: Reader) -> ModelList:
    """Chaque version du registre (date, commit, seuil, lignes d'entraînement, empreinte) et celle qui est servie."""
    settings = request.app.state.settings
    served = request.app.state.models.version
    found = []
    for v in list_versions(settings.models_dir):
        try:
            meta = read_metadata(v, settings.models_dir)
        except RegistryError as exc:
            logger.warning("registry version %s skipped: %s", v, exc)
            continue
        found.append(
            ModelInfo(
                version=v,
                created_at=meta["created_at"],
                git_commit=meta.get("git_commit", "inconnu"),
                threshold=meta["threshold"],
                training_rows=meta["training_data"]["rows"],
                sha256=str(meta.get("sha256", ""))[:12],
                served=v == served,
            )
        )
    return ModelList(served=served, models=found)


@app.get("/metrics", summary="Indicateurs depuis le démarrage", responses=KEY_ERRORS)
def metrics(request: Request, who: Reader) -> dict[str, Any]:
    """Requêtes par route et statut, taux d'erreur, latence p50/p95/p99 (ms), prédictions et taux
    d'anomalies par version du modèle, depuis le démarrage de **ce processus** (avec plusieurs
    processus uvicorn, chacun compte les requêtes qu'il a servies)."""
    return request.app.state.metrics.snapshot(scoring.ANOMALY)


@app.get(
    "/monitoring",
    summary="Surveillance : dérive, alarmes, service, retours de la maintenance",
    responses={**KEY_ERRORS, 503: error_doc("Aucun modèle chargé.")},
)
def monitoring(request: Request, who: Reader, model: ModelDep) -> dict[str, Any]:
    """La dérive de chaque capteur (PSI et KS) sur les dernières mesures notées par **tous** les processus
    (lues dans le journal d'audit) contre la distribution de référence du modèle servi, le taux d'alarmes
    comparé à celui attendu, la latence et les erreurs de ce processus, et par version du modèle la part
    des alarmes confirmées par la maintenance et les pannes manquées."""
    state = request.app.state
    pointer = deployment.current(state.settings.state_db)
    service = state.metrics.snapshot(scoring.ANOMALY)
    return {
        "model_version": model.version,
        "deployment": pointer.__dict__ if pointer else None,
        "drift": drift_report(state.settings.state_db, model, state.settings.drift_window),
        "service": {k: service[k] for k in ("since", "process_id", "requests", "latency_ms")},
        "feedback": feedback.summary(state.settings.state_db),
    }


class FeedbackIn(BaseModel):
    """Le retour d'un technicien : une alarme confirmée ou infirmée, ou une panne que le modèle a manquée."""

    model_config = ConfigDict(extra="forbid")
    verdict: str = Field(description="« confirmed », « rejected » (une alarme) ou « missed » (une panne manquée).")
    request_id: str | None = Field(None, max_length=64, description="Requête qui a levé l'alarme.")
    equipment_id: str | None = Field(None, max_length=EQUIPMENT_ID_MAX_LENGTH, description=EQUIPMENT_LABEL)
    fault_at: datetime | None = Field(None, description="Heure de la panne manquée (ISO 8601).")
    comment: str | None = Field(None, max_length=500)


@app.post(
    "/feedback",
    summary="Confirmer ou infirmer une alarme, signaler une panne manquée",
    responses={
        **KEY_ERRORS,
        **JSON_BODY_ERRORS,
        404: error_doc("Aucune prédiction avec cet identifiant de requête, ou pour cet équipement avant cette heure."),
        409: error_doc("La requête n'a levé aucune alarme : rien à confirmer ou infirmer."),
        422: error_doc("Verdict refusé : chaque champ à corriger est nommé, avec la raison."),
    },
)
def post_feedback(request: Request, who: Technician, body: FeedbackIn, request_id: RequestId) -> Any:
    """Enregistre le verdict de la maintenance (inscrit aussi au journal d'audit) ; `GET /monitoring` en fait
    la synthèse par version du modèle."""
    try:
        stored = feedback.record(
            request.app.state.settings.state_db,
            body.verdict,
            who.name,
            body.request_id,
            body.equipment_id,
            body.fault_at,
            body.comment,
        )
    except feedback.FeedbackError as exc:
        return error_response(request, exc.status, str(exc))
    return {**stored, "request_id": request_id}


@app.get(
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
    try:
        rows = audit.query(request.app.state.settings.state_db, user, model_version, since, until, kind, limit, offset)
    except ValueError as exc:
        return error_response(request, 422, str(exc))
    if format == "csv":
        headers = {"Content-Disposition": 'attachment; filename="audit.csv"'}
        return Response(audit.to_csv(rows), media_type="text/csv; charset=utf-8", headers=headers)
    return {"count": len(rows), "rows": rows}


@app.post(
    "/admin/models/{version}/deploy",
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
    try:
        pointer, loaded = deployment.deploy(
            state.settings.state_db,
            version,
            who.name,
            state.settings.models_dir,
            request_id=request_id,
            client=client_address(request),
        )
    except deployment.DeploymentError as exc:
        return error_response(request, exc.status, str(exc))
    state.models.add(loaded)
    return {**pointer.__dict__, "request_id": request_id}


@app.post(
    "/admin/rollback",
    summary="Revenir à la version précédente du modèle",
    responses={**KEY_ERRORS, 409: error_doc("Aucune version précédente vers laquelle revenir.")},
)
def rollback_model(request: Request, who: RollbackAdmin, request_id: RequestId) -> Any:
    """Sert à nouveau la version que le dernier déploiement a remplacée (déjà en mémoire : moins d'une seconde). Audité."""
    start = time.perf_counter()
    try:
        pointer = deployment.rollback(
            request.app.state.settings.state_db, who.name, request_id=request_id, client=client_address(request)
        )
    except deployment.DeploymentError as exc:
        return error_response(request, exc.status, str(exc))
    return {**pointer.__dict__, "switch_ms": round(elapsed_ms(start), 1), "request_id": request_id}


class KeyIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(description="À qui ou à quoi sert la clé (personne, site, tâche).")
    role: str = Field(description="reader, operator, auditor ou admin.")


@app.get("/admin/keys", summary="Les clés d'API (jamais les clés elles-mêmes)", responses=KEY_ERRORS)
def list_api_keys(request: Request, who: KeyAdmin) -> list[dict[str, Any]]:
    return auth.list_keys(request.app.state.settings.state_db)


@app.post(
    "/admin/keys",
    status_code=201,
    summary="Créer une clé d'API (affichée une seule fois)",
    responses={**KEY_ERRORS, **JSON_BODY_ERRORS, 422: error_doc("Nom ou rôle refusé.")},
)
def create_api_key(request: Request, who: KeyAdmin, body: KeyIn) -> Any:
    try:
        key = auth.create_key(request.app.state.settings.state_db, body.name, body.role, by=who.name)
    except auth.KeyRefused as exc:
        return error_response(request, 422, str(exc))
    return {"key": key, "key_id": key[3:19], "name": body.name.strip(), "role": body.role}


@app.delete(
    "/admin/keys/{key_id}",
    summary="Révoquer une clé d'API",
    responses={**KEY_ERRORS, 404: error_doc("Aucune clé de cet identifiant."), 409: error_doc("Clé déjà révoquée.")},
)
def revoke_api_key(request: Request, who: KeyAdmin, key_id: str) -> Any:
    try:
        auth.revoke_key(request.app.state.settings.state_db, key_id, by=who.name)
    except auth.KeyRefused as exc:
        return error_response(request, 404 if "aucune clé" in str(exc) else 409, str(exc))
    return {"key_id": key_id, "revoked": True}


# ---- Errors: always French, never a traceback; HTML for the form, JSON for the API --------------


def wants_html(request: Request) -> bool:
    path = request.url.path
    return path == "/" or path.startswith(FORM_PATHS[1]) or "text/html" in request.headers.get("accept", "")


def error_response(
    request: Request, status_code: int, detail: str, errors: list[dict[str, str]] | None = None
) -> Response:
    """The French error a client gets: a page for a person in a browser, JSON for a program."""
    if wants_html(request):
        return error_page(status_code, *([e["message"] for e in errors] if errors else [detail]))
    request_id = request.scope.get("state", {}).get("request_id", "")
    body = {"detail": detail, "errors": errors or [], "request_id": request_id}
    return JSONResponse(body, status_code=status_code)


@app.exception_handler(ModelUnavailable)
def no_model(request: Request, exc: ModelUnavailable) -> Response:
    if wants_html(request):
        return error_page(503, "Aucun modèle : lancez make model, puis redémarrez ce service.", f"Détail : {exc}")
    return error_response(request, 503, f"aucun modèle chargé : le service ne peut pas prédire ({exc})")


@app.exception_handler(audit.AuditUnavailable)
def no_audit(request: Request, exc: audit.AuditUnavailable) -> Response:
    logger.error("request refused, state database unavailable: %s", exc)
    return error_response(request, 503, AUDIT_UNAVAILABLE)


@app.exception_handler(inference_log.LogUnavailable)
def no_log(request: Request, exc: inference_log.LogUnavailable) -> Response:
    logger.error("request refused, inference log unavailable: %s", exc)
    return error_response(request, 503, LOG_UNAVAILABLE)


@app.exception_handler(RequestValidationError)
def invalid_request(request: Request, exc: RequestValidationError) -> Response:
    if wants_html(request):
        fields = [str(e["loc"][-1]) for e in exc.errors()]
        if "fichier" in fields:
            return error_page(422, "aucun fichier reçu : choisissez un fichier CSV avant de cliquer sur « Analyser »")
        return error_page(422, *(f"champ « {f} » manquant ou invalide" for f in fields))
    errors = [field_error(e) for e in exc.errors()]
    return error_response(request, 422, f"requête refusée, à corriger : {to_fix(errors)}", errors)


@app.exception_handler(StarletteHTTPException)
def http_error(request: Request, exc: StarletteHTTPException) -> Response:
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


def body_limit(request: Request) -> int:
    # The path of ``request.url.path``, read from the scope: no whole URL built on every request.
    settings = request.app.state.settings
    if request.scope["path"] in ("/fichier", "/predict/csv"):
        return settings.max_upload_bytes + MULTIPART_MARGIN
    if request.scope["path"] == "/predict/batch":
        return settings.max_batch_rows * BATCH_BYTES_PER_ROW
    return settings.max_body_bytes


def too_large(request: Request, limit: int) -> Response:
    return error_response(request, 413, f"corps de requête trop volumineux : {size(limit)} au plus")


def model_version(scope: dict[str, Any]) -> str:
    """The version that served this request, else the one this worker serves now."""
    if "model_version" in scope.get("state", {}):
        return scope["state"]["model_version"]
    cache = getattr(scope["app"].state, "models", None)
    return (cache.version if cache else None) or "-"


def record_request(scope: dict[str, Any], status: int, latency_ms: float) -> None:
    """Count a request in the metrics under its route; unknown addresses share one name (a bounded set)."""
    metrics = getattr(scope["app"].state, "metrics", None)
    if metrics is not None:
        path = getattr(scope.get("route"), "path", None) or "(autre)"
        metrics.record_request(f"{scope['method']} {path}", status, latency_ms)


app.add_middleware(BodySizeLimit, limit_for=body_limit, on_too_large=too_large)
app.add_middleware(SecurityHeaders)
app.add_middleware(RequestLog, on_error=internal_error, model_version=model_version, record=record_request)  # outermost


def main() -> None:
    """Serve the API and the page on the configured address (127.0.0.1:8014 by default), with several workers."""
    settings = get_settings()
    print(f"API de détection d'anomalies : http://{settings.host}:{settings.port}/docs (Ctrl+C pour arrêter)")
    uvicorn.run(
        "stage4_prod.app:app", host=settings.host, port=settings.port, workers=settings.workers, access_log=False
    )


if __name__ == "__main__":
    main()
