"""Stage 3: pre-production, the API of stage 2 plus batches, a stream, an inference log and metrics.

    python -m stage3_preprod.app      # then open http://127.0.0.1:8003/docs

One reading typed in a form, or a SKAB-format CSV file, is scored with the registered
model, loaded once at startup. This module builds the application: the lifespan that
loads the model, the pages (``pages.py``, Jinja2 templates and one stylesheet), the APIs
(``api.py``, ``batch_api.py``, ``stream.py``, ``monitoring.py``), the French errors
(``errors.py``) and the request log (``middleware.py``).
"""

from __future__ import annotations

import logging
from contextlib import asynccontextmanager
from pathlib import Path

import uvicorn
from fastapi import FastAPI, Request
from fastapi.staticfiles import StaticFiles

from common.body_limit import BodySizeLimit
from common.incremental import IncrementalScorer
from common.registry import RegistryError
from common.runtime import tune_garbage_collector

from . import __version__, api, batch_api, errors, monitoring, pages, scoring, stream
from .logging_config import configure_logging
from .middleware import RequestLog
from .settings import get_settings

logger = logging.getLogger(__name__)

MULTIPART_MARGIN = 64 * 1024  # room for the multipart envelope around an uploaded file
BATCH_BYTES_PER_ROW = 1024  # a reading is about 300 bytes of JSON: room for spaces and long ids


@asynccontextmanager
async def lifespan(app: FastAPI):
    """Read the settings and load the model once; without a model the pages say so (503)."""
    app.state.settings = get_settings()
    configure_logging(app.state.settings.log_level)
    app.state.downloads = pages.Downloads()
    app.state.metrics = monitoring.Metrics()
    app.state.model, app.state.model_error, app.state.scorer = None, None, None
    try:
        app.state.model = scoring.load_model(app.state.settings)
        app.state.scorer = IncrementalScorer(app.state.model.model, app.state.settings.stream_max_equipments)
        logger.info("service %s ready with model %s", __version__, app.state.model.version)
    except RegistryError as exc:
        app.state.model_error = str(exc)
        logger.error("no model loaded: %s", exc)
    tune_garbage_collector()  # a batch holds thousands of objects: collect less often (common/runtime.py)
    yield


DESCRIPTION = """
Détection d'anomalies sur une pompe industrielle, à partir de huit capteurs.
Chaque réponse porte les en-têtes `X-Model-Version` et `X-Request-ID` : citez ce dernier pour signaler un problème.
Chaque prédiction est ajoutée au journal des inférences avant la réponse ; si c'est impossible : 503.
Les erreurs sont en français : `{"detail": "...", "errors": [{"field": "...", "message": "..."}], "request_id": "..."}`.
Le formulaire web de l'étape 1 reste disponible à la racine `/`.
"""


def body_limit(request: Request) -> int:
    settings = request.app.state.settings
    if request.url.path in ("/fichier", "/predict/csv"):
        return settings.max_upload_bytes + MULTIPART_MARGIN
    if request.url.path == "/predict/batch":
        return settings.max_batch_rows * BATCH_BYTES_PER_ROW
    return settings.max_body_bytes


app = FastAPI(
    title="Détection d'anomalies sur la pompe (étape 3)",
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
for exc_class, handler in errors.HANDLERS.items():
    app.add_exception_handler(exc_class, handler)
app.add_middleware(BodySizeLimit, limit_for=body_limit, on_too_large=errors.too_large)
app.add_middleware(RequestLog)  # outermost: sees all


def main() -> None:
    """Serve the API and the page on the configured address (127.0.0.1:8003 by default)."""
    settings = get_settings()
    print(f"API de détection d'anomalies : http://{settings.host}:{settings.port}/docs (Ctrl+C pour arrêter)")
    uvicorn.run(app, host=settings.host, port=settings.port)


if __name__ == "__main__":
    main()
