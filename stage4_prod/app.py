"""Stage 4: production, the API of stage 3 behind API keys, with an audit trail, drift monitoring and live deploys.

    uvicorn stage4_prod.app:app --port 8014 --workers 2     # or: python -m stage4_prod.app

One reading typed in a form, or a SKAB-format CSV file, is scored with the registered
model, loaded once at startup. This module builds the application: the lifespan that
loads the model, the pages (``pages.py``, Jinja2 templates and one stylesheet), the APIs
(``api.py``, ``batch_api.py``, ``stream.py``, ``monitoring.py``), the French errors
(``errors.py``) and the request log (``middleware.py``).

The routes of stage 3 now need an ``X-API-Key`` whose role allows them (``auth.py``, as
dependencies in ``deps.py``); every prediction is audited (``audit.py``) before its answer
leaves. Stage 4 adds ``GET /monitoring`` (``monitoring.py``), ``POST /feedback``
(``feedback_api.py``), ``GET /audit`` (``trail.py``) and the admin routes (``admin.py``):
each request uses the version the deployment pointer names when it starts (``deployment.py``).
"""

from __future__ import annotations

import logging
from contextlib import asynccontextmanager
from pathlib import Path

import uvicorn
from fastapi import FastAPI, Request
from fastapi.staticfiles import StaticFiles

from common.body_limit import BodySizeLimit
from common.registry import RegistryError
from common.runtime import tune_garbage_collector

from . import __version__, admin, api, batch_api, errors, feedback_api, monitoring, pages, stream, trail
from .audit import AuditUnavailable, Recorder
from .auth import Authenticator
from .deployment import ModelCache
from .deps import served_model
from .drift import warm_up
from .logging_config import configure_logging
from .middleware import RequestLog, SecurityHeaders
from .scoring import Scorers
from .settings import get_settings

logger = logging.getLogger(__name__)

MULTIPART_MARGIN = 64 * 1024  # room for the multipart envelope around an uploaded file
BATCH_BYTES_PER_ROW = 1024  # a reading is about 300 bytes of JSON: room for spaces and long ids


@asynccontextmanager
async def lifespan(app: FastAPI):
    """Read the settings, open the state database and follow the served-model pointer; without a model, 503."""
    settings = app.state.settings = get_settings()
    configure_logging(settings.log_level)
    app.state.downloads = pages.Downloads()
    app.state.metrics = monitoring.Metrics()
    app.state.auth = Authenticator(settings.state_db, settings.rate_limit_per_s, settings.rate_limit_burst)
    app.state.audit = Recorder(settings.state_db)  # group commit of this process's prediction rows
    app.state.models = ModelCache(settings.state_db, settings.models_dir, settings.model_check_interval_s)
    app.state.scorers = Scorers(settings.stream_max_equipments)
    app.state.drift, app.state.model_error = None, None
    warm_up()  # scipy, for the drift window's KS tests, imported in the background
    try:
        app.state.models.start(settings.model_version)  # the first start writes the pointer; later ones follow it
        logger.info("service %s ready with model %s", __version__, served_model(app.state).version)
    except (RegistryError, AuditUnavailable) as exc:
        app.state.model_error = str(exc)
        logger.error("no model served: %s", exc)
    tune_garbage_collector()  # a batch holds thousands of objects: collect less often (common/runtime.py)
    yield
    app.state.audit.close()


DESCRIPTION = """
Détection d'anomalies sur une pompe industrielle, à partir de huit capteurs.
Chaque réponse porte les en-têtes `X-Model-Version` et `X-Request-ID` : citez ce dernier pour signaler un problème.
Chaque prédiction est ajoutée aux journaux d'audit et des inférences avant la réponse ; si c'est impossible : 503.
Les erreurs sont en français : `{"detail": "...", "errors": [{"field": "...", "message": "..."}], "request_id": "..."}`.
Le formulaire web de l'étape 1 reste disponible à la racine `/`.

**Accès** : sauf `GET /health` et `GET /version`, chaque adresse demande une clé dans l'en-tête `X-API-Key`
(`make create-key NAME=... ROLE=...`), de rôle `reader` (surveillance), `operator` (prédictions, retours),
`auditor` (audit) ou `admin` (modèles, clés) ; 401 : clé absente ou inconnue ; 403 : rôle non autorisé ;
429 : trop de requêtes (en-tête `Retry-After`). Le flux `/stream` prend la clé dans l'en-tête de la poignée
de main, à défaut dans le paramètre `api_key` de l'adresse.
"""


def body_limit(request: Request) -> int:
    settings = request.app.state.settings
    if request.url.path in ("/fichier", "/predict/csv"):
        return settings.max_upload_bytes + MULTIPART_MARGIN
    if request.url.path == "/predict/batch":
        return settings.max_batch_rows * BATCH_BYTES_PER_ROW
    return settings.max_body_bytes


app = FastAPI(
    title="Détection d'anomalies sur la pompe (étape 4)",
    description=DESCRIPTION,
    version=__version__,
    lifespan=lifespan,
)
app.mount("/static", StaticFiles(directory=Path(__file__).parent / "static"), name="static")
app.include_router(pages.router)
app.include_router(api.router)
app.include_router(batch_api.router)
app.include_router(stream.router)
app.include_router(monitoring.router)
app.include_router(feedback_api.router)
app.include_router(trail.router)
app.include_router(admin.router)
for exc_class, handler in errors.HANDLERS.items():
    app.add_exception_handler(exc_class, handler)
app.add_middleware(BodySizeLimit, limit_for=body_limit, on_too_large=errors.too_large)
app.add_middleware(SecurityHeaders)
app.add_middleware(RequestLog)  # outermost: sees all


def main() -> None:
    """Serve the API and the page on the configured address (127.0.0.1:8014 by default), with several workers."""
    settings = get_settings()
    print(f"API de détection d'anomalies : http://{settings.host}:{settings.port}/docs (Ctrl+C pour arrêter)")
    uvicorn.run(
        f"{__package__}.app:app", host=settings.host, port=settings.port, workers=settings.workers, access_log=False
    )


if __name__ == "__main__":
    main()
