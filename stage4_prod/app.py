"""Stage 4: production, the API of stage 3 behind API keys, with an audit trail, drift monitoring and live deploys.

    uvicorn stage4_prod.app:app --port 8014 --workers 2     # or: python -m stage4_prod.app

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
from typing import Any

import uvicorn
from fastapi import FastAPI, Request
from fastapi.staticfiles import StaticFiles

from common.registry import RegistryError

from . import __version__, admin, api, batch_api, errors, feedback_api, monitoring, pages, stream, trail
from .audit import AuditUnavailable, Recorder
from .auth import Authenticator
from .deployment import ModelCache
from .deps import model_version, served_model
from .drift import warm_up
from .logging_config import configure_logging
from .middleware import BodySizeLimit, RequestLog, SecurityHeaders
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
  Un message refusé reçoit une erreur en français ; la connexion reste ouverte. Clé : en-tête `X-API-Key`
  de la poignée de main, à défaut paramètre `api_key` de l'adresse.
* `GET /models` : les versions du registre et celle qui est servie (pointeur de déploiement partagé).
* `GET /metrics` : au format texte de Prometheus, requêtes par route et statut, histogramme des latences,
  prédictions et anomalies par version du modèle, tous les processus du service comptés ensemble.
* `GET /metrics/json` : le résumé en JSON (erreurs, latence p50/p95/p99, anomalies) du processus qui répond.
* `GET /monitoring` : dérive de chaque capteur (PSI, KS), taux d'alarmes, retours de la maintenance.
* `POST /feedback` : confirmer ou infirmer une alarme (par identifiant de requête), signaler une panne manquée.
* `GET /audit` : le journal d'audit (qui a prédit quoi, avec quelle version), filtrable, export CSV (`?format=csv`).
* `/admin/models/{version}/deploy`, `/admin/rollback`, `/admin/keys` : changer de modèle sans interruption, gérer les clés.
* `GET /health` (le service est-il prêt ?) et `GET /version` (ce qui tourne exactement) : sans clé, pour les sondes.

**Accès** : chaque autre adresse demande une clé dans l'en-tête `X-API-Key` (`make create-key NAME=... ROLE=...`),
de rôle `reader` (surveillance), `operator` (prédictions, retours), `auditor` (audit) ou `admin` (modèles, clés) ;
401 : clé absente ou inconnue ; 403 : rôle non autorisé ; 429 : trop de requêtes (en-tête `Retry-After`).
Chaque prédiction est inscrite aux journaux d'audit et des inférences avant la réponse (sinon 503).

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


def record_request(scope: dict[str, Any], status: int, latency_ms: float) -> None:
    """Count a request in the metrics under its route; unknown addresses share one name (a bounded set)."""
    metrics = getattr(scope["app"].state, "metrics", None)
    if metrics is not None:
        path = getattr(scope.get("route"), "path", None) or "(autre)"
        metrics.record_request(f"{scope['method']} {path}", status, latency_ms)


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
app.add_middleware(RequestLog, on_error=errors.internal_error, model_version=model_version, record=record_request)


def main() -> None:
    """Serve the API and the page on the configured address (127.0.0.1:8014 by default), with several workers."""
    settings = get_settings()
    print(f"API de détection d'anomalies : http://{settings.host}:{settings.port}/docs (Ctrl+C pour arrêter)")
    uvicorn.run(
        f"{__package__}.app:app", host=settings.host, port=settings.port, workers=settings.workers, access_log=False
    )


if __name__ == "__main__":
    main()
