"""Stage 3: pre-production, the REST API of stage 2 plus batches, a stream, an inference log and metrics.

    uvicorn stage3_preprod.app:app --port 8003     # or: python -m stage3_preprod.app
    curl -s http://127.0.0.1:8003/health

``POST /predict`` scores one reading sent as JSON; ``GET /health``, ``GET /version`` and
``GET /models`` say whether the service is ready and exactly what runs (``api.py``).
``POST /predict/batch`` and ``POST /predict/csv`` score many readings, with a result or an
error per reading (``batch_api.py``); the WebSocket ``/stream`` scores one reading per
message in the context of its equipment (``stream.py``). Every prediction is appended to
the inference log (``inference_log.py``); ``GET /metrics`` serves Prometheus's format
(``monitoring.py``). This module builds the application: the lifespan that configures the
logs and loads the model, the routers, the French errors (``errors.py``) and two
middlewares: the request log with its id and metrics, and the body size limit (``middleware.py``).
"""

from __future__ import annotations

import logging
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import uvicorn
from fastapi import FastAPI, Request
from fastapi.staticfiles import StaticFiles

from common.incremental import IncrementalScorer
from common.registry import RegistryError

from . import __version__, api, batch_api, errors, monitoring, pages, scoring, stream
from .logging_config import configure_logging
from .middleware import BodySizeLimit, RequestLog
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
    yield


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
* `GET /models` : les versions du registre et celle qui est servie (variable `MODEL_VERSION`).
* `GET /metrics` : au format texte de Prometheus, requêtes par route et statut, histogramme des latences,
  prédictions et anomalies par version du modèle, tous les processus du service comptés ensemble.
* `GET /metrics/json` : le résumé en JSON (taux d'erreur, latence p50, p95, p99, taux d'anomalies),
  depuis le démarrage du processus qui répond.
* `GET /health` : le service est-il prêt (modèle chargé) ?
* `GET /version` : versions de l'application et du modèle, commit Git et date de construction de l'image.

Chaque prédiction est ajoutée au journal des inférences (un fichier CSV par jour) ; si c'est impossible
(dossier en lecture seule, disque plein) : 503, la prédiction n'est pas rendue (aucune réponse sans sa trace).

Chaque réponse porte l'en-tête `X-Model-Version` et l'en-tête `X-Request-ID` (celui que vous envoyez, s'il est raisonnable,
sinon un nouveau) : citez-le pour signaler un problème. Les erreurs sont en français :
`{"detail": "...", "errors": [{"field": "...", "message": "..."}], "request_id": "..."}`.
Le formulaire web de l'étape 1 reste disponible à la racine `/`.
"""


def body_limit(request: Request) -> int:
    settings = request.app.state.settings
    if request.url.path in ("/fichier", "/predict/csv"):
        return settings.max_upload_bytes + MULTIPART_MARGIN
    if request.url.path == "/predict/batch":
        return settings.max_batch_rows * BATCH_BYTES_PER_ROW
    return settings.max_body_bytes


def model_version(scope: dict[str, Any]) -> str:
    loaded = getattr(scope["app"].state, "model", None)
    return loaded.version if loaded else "-"


def record_request(scope: dict[str, Any], status: int, latency_ms: float) -> None:
    """Count a request in the metrics under its route; unknown addresses share one name (a bounded set)."""
    metrics = getattr(scope["app"].state, "metrics", None)
    if metrics is not None:
        path = getattr(scope.get("route"), "path", None) or "(autre)"
        metrics.record_request(f"{scope['method']} {path}", status, latency_ms)


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
app.add_middleware(RequestLog, on_error=errors.internal_error, model_version=model_version, record=record_request)


def main() -> None:
    """Serve the API and the page on the configured address (127.0.0.1:8003 by default)."""
    settings = get_settings()
    print(f"API de détection d'anomalies : http://{settings.host}:{settings.port}/docs (Ctrl+C pour arrêter)")
    uvicorn.run(app, host=settings.host, port=settings.port, access_log=False)


if __name__ == "__main__":
    main()
