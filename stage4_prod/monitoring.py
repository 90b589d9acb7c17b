"""Monitoring: every prediction traced, ``GET /metrics`` for Prometheus, ``GET /metrics/json`` for people.

With several uvicorn workers, each writes its counts to ``PROMETHEUS_MULTIPROC_DIR``
(emptied by whoever starts them, as the image does) and a scrape adds them up.
Stage 4 adds the audit trail to every trace (committed before the answer leaves), the
drift window, and ``GET /monitoring``; each route needs a key with the ``reader`` role.
"""

from __future__ import annotations

import time
from collections import Counter as Tally
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

import pandas as pd
from fastapi import APIRouter, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.multiprocess import MultiProcessCollector

from common.registry import LoadedModel
from common.request_stats import RequestStats
from common.schema import TIMESTAMP

from . import audit, deployment, feedback, inference_log, scoring
from .deps import ModelDep, Principal, Reader
from .drift import DriftMonitor
from .models import KEY_ERRORS, error_doc

router = APIRouter()
REGISTRY = CollectorRegistry()  # this stage's metrics only, whatever else the process imported
REQUESTS = Counter("pompe_requests", "Requêtes servies, par route et statut.", ["route", "status"], registry=REGISTRY)
LATENCY = Histogram("pompe_request_duration_seconds", "Durée des requêtes, par route.", ["route"], registry=REGISTRY)
PREDICTIONS = Counter(
    "pompe_predictions", "Mesures notées, par version du modèle.", ["model_version"], registry=REGISTRY
)
ANOMALIES = Counter(
    "pompe_anomalies", "Mesures anormales, par version du modèle.", ["model_version"], registry=REGISTRY
)


class Metrics(RequestStats):
    """The JSON summary of this process (``common.request_stats``), each fact also given to Prometheus."""

    def record_request(self, route: str, status: int, latency_ms: float) -> None:
        REQUESTS.labels(route, str(status)).inc()
        LATENCY.labels(route).observe(latency_ms / 1000)
        super().record_request(route, status, latency_ms)

    def record_decisions(self, pairs: Iterable[tuple[str, str]]) -> None:
        counts = Tally(pairs)
        for (version, decision), n in counts.items():
            PREDICTIONS.labels(version).inc(n)
            if decision == scoring.ANOMALY:
                ANOMALIES.labels(version).inc(n)
        super().record_decisions(counts.elements())


def record_request(scope: dict[str, Any], status: int, latency_ms: float) -> None:
    """Count a request under its route; unknown addresses share one name (a bounded set)."""
    metrics = getattr(scope["app"].state, "metrics", None)
    if metrics is not None:
        path = getattr(scope.get("route"), "path", None) or "(autre)"
        metrics.record_request(f"{scope['method']} {path}", status, latency_ms)


def elapsed_ms(start: float) -> float:
    return (time.perf_counter() - start) * 1000


def stamped(reading: dict[str, Any]) -> dict[str, Any]:
    """``reading`` with its timestamp: its own (UTC, without zone), else now."""
    return {**reading, TIMESTAMP: reading.get(TIMESTAMP) or datetime.now(UTC).replace(tzinfo=None)}


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
    ``scoring.score_reading``), without a frame. Called from the event loop: the audit row is
    committed by the recorder's writer thread, so that a commit waiting for a lock or an
    ``fsync`` does not stop the loop.

    Raises audit.AuditUnavailable if the audit trail cannot be written: the caller must not answer.
    """
    row = scoring.audit_row(who.name, client, source, request_id, reading, result)
    await state.audit.record_predictions_async([row])
    inference_log.record_reading(state.settings.log_dir, source, request_id, reading, result, latency_ms)
    state.metrics.record_decisions([(result["model_version"], result["decision"])])
    if state.drift is not None:
        state.drift.observe([reading], [result["decision"]])


def drift_report(state_db: Any, loaded: LoadedModel, window: int) -> dict[str, Any]:
    """Drift of the last ``window`` audited readings, whichever worker scored them, against ``loaded``'s reference.

    The audit trail holds every worker's readings, so every worker answers the same; the
    process's own DriftMonitor (fed reading by reading) is what logs the alerts.
    """
    monitor = DriftMonitor(loaded.model.reference_, window, check_every=10**9, model_version=loaded.version)
    recent = audit.recent_inputs(state_db, window)
    if recent:
        monitor.observe([inputs for inputs, _ in recent], [decision for _, decision in recent])
    return monitor.report(log=False)


@router.get("/metrics", summary="Indicateurs au format Prometheus", response_class=Response, responses=KEY_ERRORS)
def metrics(request: Request, who: Reader) -> Response:
    """Requêtes par route et statut, latences, prédictions et anomalies par version du modèle ; tous les
    processus du service comptés ensemble."""
    folder = request.app.state.settings.prometheus_multiproc_dir
    registry = REGISTRY
    if folder is not None:
        registry = CollectorRegistry()
        MultiProcessCollector(registry, path=str(folder))
    return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)


@router.get("/metrics/json", summary="Indicateurs depuis le démarrage, en JSON", responses=KEY_ERRORS)
def metrics_json(request: Request, who: Reader) -> dict[str, Any]:
    """Taux d'erreur, latence p50/p95/p99 (ms), taux d'anomalies par version du modèle, depuis le
    démarrage du processus qui répond."""
    return request.app.state.metrics.snapshot(scoring.ANOMALY)


@router.get(
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
