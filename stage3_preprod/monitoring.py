"""Monitoring: every prediction traced, ``GET /metrics`` for Prometheus, ``GET /metrics/json`` for people.

With several uvicorn workers, each writes its counts to ``PROMETHEUS_MULTIPROC_DIR``
(emptied by whoever starts them, as the image does) and a scrape adds them up.
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

from common.request_stats import RequestStats
from common.schema import TIMESTAMP

from . import inference_log, scoring

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


def trace(state: Any, source: str, request_id: str, scored: pd.DataFrame, latency_ms: float) -> None:
    """Append scored readings to the inference log and count them in the metrics (``state``: app.state)."""
    inference_log.record(state.settings.log_dir, source, request_id, scored, latency_ms)
    state.metrics.record_predictions(scored)


def trace_reading(state: Any, source: str, request_id: str, reading: dict, result: dict, latency_ms: float) -> None:
    """``trace`` for one reading and its ``scoring.score_reading`` result, without a frame."""
    inference_log.record_reading(state.settings.log_dir, source, request_id, reading, result, latency_ms)
    state.metrics.record_decisions([(result["model_version"], result["decision"])])


@router.get("/metrics", summary="Indicateurs au format Prometheus", response_class=Response)
def metrics(request: Request) -> Response:
    """Requêtes par route et statut, latences, prédictions et anomalies par version du modèle ; tous les
    processus du service comptés ensemble."""
    folder = request.app.state.settings.prometheus_multiproc_dir
    registry = REGISTRY
    if folder is not None:
        registry = CollectorRegistry()
        MultiProcessCollector(registry, path=str(folder))
    return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)


@router.get("/metrics/json", summary="Indicateurs depuis le démarrage, en JSON")
def metrics_json(request: Request) -> dict[str, Any]:
    """Taux d'erreur, latence p50/p95/p99 (ms), taux d'anomalies par version du modèle, depuis le
    démarrage du processus qui répond."""
    return request.app.state.metrics.snapshot(scoring.ANOMALY)
