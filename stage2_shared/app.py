"""Stage 2: the shared tool, a REST API that colleagues on other sites call over HTTP.

    python -m stage2_shared.app      # then open http://127.0.0.1:8002/docs

One reading typed in a form, or a SKAB-format CSV file, is scored with the registered
model, loaded once at startup. This module builds the application: the lifespan that
loads the model, the pages (``pages.py``, Jinja2 templates and one stylesheet), the API
(``api.py``), the French errors (``errors.py``) and the request log (``middleware.py``).
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

from . import __version__, api, errors, pages, scoring
from .logging_config import configure_logging
from .middleware import RequestLog
from .settings import get_settings

logger = logging.getLogger(__name__)

MULTIPART_MARGIN = 64 * 1024  # room for the multipart envelope around an uploaded file


@asynccontextmanager
async def lifespan(app: FastAPI):
    """Read the settings and load the model once; without a model the pages say so (503)."""
    app.state.settings = get_settings()
    configure_logging(app.state.settings.log_level)
    app.state.downloads = pages.Downloads()
    app.state.model, app.state.model_error = None, None
    try:
        app.state.model = scoring.load_model(app.state.settings)
        logger.info("service %s ready with model %s", __version__, app.state.model.version)
    except RegistryError as exc:
        app.state.model_error = str(exc)
        logger.error("no model loaded: %s", exc)
    yield


DESCRIPTION = """
Détection d'anomalies sur une pompe industrielle, à partir de huit capteurs.
Chaque réponse porte l'en-tête `X-Request-ID` : citez-le pour signaler un problème.
Les erreurs sont en français : `{"detail": "...", "errors": [{"field": "...", "message": "..."}], "request_id": "..."}`.
Le formulaire web de l'étape 1 reste disponible à la racine `/`.
"""


def body_limit(request: Request) -> int:
    settings = request.app.state.settings
    return settings.max_upload_bytes + MULTIPART_MARGIN if request.url.path == "/fichier" else settings.max_body_bytes


app = FastAPI(
    title="Détection d'anomalies sur la pompe (étape 2)",
    description=DESCRIPTION,
    version=__version__,
    lifespan=lifespan,
)
app.mount("/static", StaticFiles(directory=Path(__file__).parent / "static"), name="static")
app.include_router(pages.router)
app.include_router(api.router)
for exc_class, handler in errors.HANDLERS.items():
    app.add_exception_handler(exc_class, handler)
app.add_middleware(BodySizeLimit, limit_for=body_limit, on_too_large=errors.too_large)
app.add_middleware(RequestLog)  # outermost: sees all


def main() -> None:
    """Serve the API and the page on the configured address (127.0.0.1:8002 by default)."""
    settings = get_settings()
    print(f"API de détection d'anomalies : http://{settings.host}:{settings.port}/docs (Ctrl+C pour arrêter)")
    uvicorn.run(app, host=settings.host, port=settings.port)


if __name__ == "__main__":
    main()
