"""Stage 1: a local web page where a colleague who does not code gets a prediction.

    python -m stage1_local.app      # then open http://127.0.0.1:8001

One reading typed in a form, or a SKAB-format CSV file, is scored with the registered
model, loaded once at startup. This module builds the application: the lifespan that
loads the model, the pages (``pages.py``, Jinja2 templates and one stylesheet) and the
French error pages (``errors.py``). No JavaScript is needed.
"""

from __future__ import annotations

import logging
from contextlib import asynccontextmanager
from pathlib import Path

import uvicorn
from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

from common.registry import RegistryError

from . import errors, pages, scoring
from .logging_config import configure_logging
from .settings import get_settings

logger = logging.getLogger(__name__)


@asynccontextmanager
async def lifespan(app: FastAPI):
    """Read the settings and load the model once; without a model the pages say so (503)."""
    app.state.settings = get_settings()
    configure_logging(app.state.settings.log_level)
    app.state.downloads = pages.Downloads()
    app.state.model, app.state.model_error = None, None
    try:
        app.state.model = scoring.load_model(app.state.settings)
    except RegistryError as exc:
        app.state.model_error = str(exc)
        logger.error("no model loaded: %s", exc)
    yield


app = FastAPI(title="Détection d'anomalies sur la pompe (étape 1)", lifespan=lifespan)
app.mount("/static", StaticFiles(directory=Path(__file__).parent / "static"), name="static")
app.include_router(pages.router)
for exc_class, handler in errors.HANDLERS.items():
    app.add_exception_handler(exc_class, handler)


def main() -> None:
    """Serve the page on the configured address (127.0.0.1:8001 by default)."""
    settings = get_settings()
    print(f"Formulaire de détection d'anomalies : ouvrez http://{settings.host}:{settings.port}/ (Ctrl+C pour arrêter)")
    uvicorn.run(app, host=settings.host, port=settings.port)


if __name__ == "__main__":
    main()
