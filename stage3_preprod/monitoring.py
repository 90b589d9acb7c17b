"""Monitoring: ``GET /metrics`` for Prometheus, ``GET /metrics/json`` for the tour and the report.

``/metrics`` serves the Prometheus text format through ``prometheus_client``: requests by
route and status, a latency histogram per route, predictions and anomalies per model
version. With several uvicorn workers, each worker writes its counts to files in
``PROMETHEUS_MULTIPROC_DIR`` (multiprocess mode, set and emptied by whoever starts the
workers, as the image does) and a scrape adds them up, whichever worker answers.

``/metrics/json`` keeps the short summary a person reads (error rate, latency p50, p95,
p99): counted in memory by the process that answers. Latency percentiles come from a
bounded reservoir sample (Vitter's algorithm R): memory stays fixed however long the
service runs, and every request since start has the same chance to be in the sample.
"""

from __future__ import annotations

import os
import random
import threading
import time
from collections import Counter as Tally
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pandas as pd
from fastapi import APIRouter, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.multiprocess import MultiProcessCollector

from . import inference_log, scoring

router = APIRouter()
# Our own registry: the metrics of this stage only, whatever else the process imported.
REGISTRY = CollectorRegistry()
REQUESTS = Counter("pompe_requests", "Requêtes servies, par route et statut.", ["route", "status"], registry=REGISTRY)
LATENCY = Histogram(
    "pompe_request_duration_seconds", "Durée de traitement des requêtes, par route.", ["route"], registry=REGISTRY
)
PREDICTIONS = Counter(
    "pompe_predictions", "Mesures notées, par version du modèle.", ["model_version"], registry=REGISTRY
)
ANOMALIES = Counter(
    "pompe_anomalies", "Mesures jugées anormales, par version du modèle.", ["model_version"], registry=REGISTRY
)

RESERVOIR_SIZE = 4096


class Metrics:
    """Thread-safe counters of one process (requests by route and status, latency sample, predictions),
    each fact also given to the Prometheus metrics above."""

    def __init__(self, reservoir_size: int = RESERVOIR_SIZE, seed: int = 0):
        self.started_at = datetime.now(UTC)
        self.reservoir_size = reservoir_size
        self._requests: Tally[tuple[str, int]] = Tally()
        self._latencies: list[float] = []
        self._seen = 0
        self._random = random.Random(seed)
        self._predictions: Tally[tuple[str, str]] = Tally()  # (model version, decision)
        self._lock = threading.Lock()

    def record_request(self, route: str, status: int, latency_ms: float) -> None:
        REQUESTS.labels(route, str(status)).inc()
        LATENCY.labels(route).observe(latency_ms / 1000)
        with self._lock:
            self._requests[(route, status)] += 1
            self._seen += 1
            if len(self._latencies) < self.reservoir_size:
                self._latencies.append(latency_ms)
            else:
                slot = self._random.randrange(self._seen)
                if slot < self.reservoir_size:
                    self._latencies[slot] = latency_ms

    def record_predictions(self, scored: pd.DataFrame) -> None:
        """Count the rows of a scored frame by model version and decision."""
        self.record_decisions(zip(scored["model_version"].tolist(), scored["decision"].tolist(), strict=True))

    def record_decisions(self, pairs: Iterable[tuple[str, str]]) -> None:
        """Count predictions given as (model version, decision) pairs."""
        counts = Tally(pairs)
        for (version, decision), n in counts.items():
            PREDICTIONS.labels(version).inc(n)
            if decision == scoring.ANOMALY:
                ANOMALIES.labels(version).inc(n)
        with self._lock:
            self._predictions.update(counts)

    def snapshot(self, anomaly: str) -> dict[str, Any]:
        """The JSON of GET /metrics; ``anomaly`` is the decision that counts as an alarm."""
        with self._lock:
            requests, latencies, predictions = dict(self._requests), list(self._latencies), dict(self._predictions)
        total = sum(requests.values())
        by_route: dict[str, dict[str, int]] = {}
        for (route, status), n in sorted(requests.items()):
            by_route.setdefault(route, {})[str(status)] = n
        errors = sum(n for (_, status), n in requests.items() if status >= 400)
        server_errors = sum(n for (_, status), n in requests.items() if status >= 500)
        p50, p95, p99 = np.percentile(latencies, [50, 95, 99]).tolist() if latencies else (None, None, None)
        versions: dict[str, dict[str, Any]] = {}
        for (version, decision), n in sorted(predictions.items()):
            entry = versions.setdefault(version, {"predictions": 0, "anomalies": 0})
            entry["predictions"] += n
            entry["anomalies"] += n if decision == anomaly else 0
        for entry in versions.values():
            entry["anomaly_rate"] = entry["anomalies"] / entry["predictions"]
        return {
            "since": self.started_at.isoformat(timespec="seconds"),
            "uptime_s": round((datetime.now(UTC) - self.started_at).total_seconds(), 1),
            "process_id": os.getpid(),
            "requests": {
                "total": total,
                "by_route": by_route,
                "error_rate": errors / total if total else 0.0,
                "server_error_rate": server_errors / total if total else 0.0,
            },
            "latency_ms": {"p50": p50, "p95": p95, "p99": p99, "sample_size": len(latencies)},
            "models": versions,
        }


def elapsed_ms(start: float) -> float:
    return (time.perf_counter() - start) * 1000


def trace(state: Any, source: str, request_id: str, scored: pd.DataFrame, latency_ms: float) -> None:
    """Append scored readings to the inference log and count them in the metrics (``state``: app.state)."""
    inference_log.record(state.settings.log_dir, source, request_id, scored, latency_ms)
    state.metrics.record_predictions(scored)


def trace_reading(
    state: Any, source: str, request_id: str, reading: dict[str, Any], result: dict[str, Any], latency_ms: float
) -> None:
    """``trace`` for one reading scored alone (``result`` of ``scoring.score_reading``), without a frame."""
    inference_log.record_reading(state.settings.log_dir, source, request_id, reading, result, latency_ms)
    state.metrics.record_decisions([(result["model_version"], result["decision"])])


@router.get("/metrics", summary="Indicateurs au format Prometheus", response_class=Response)
def metrics(request: Request) -> Response:
    """Requêtes par route et statut, histogramme des latences, prédictions et anomalies par version du
    modèle, au format texte de Prometheus ; tous les processus du service comptés ensemble."""
    folder = request.app.state.settings.prometheus_multiproc_dir
    registry = REGISTRY
    if folder is not None:
        registry = CollectorRegistry()
        MultiProcessCollector(registry, path=str(folder))
    return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)


@router.get("/metrics/json", summary="Indicateurs depuis le démarrage, en JSON")
def metrics_json(request: Request) -> dict[str, Any]:
    """Requêtes par route et statut, taux d'erreur, latence p50/p95/p99 (ms), prédictions et taux
    d'anomalies par version du modèle, depuis le démarrage de **ce processus** (avec plusieurs
    processus uvicorn, chacun compte les requêtes qu'il a servies)."""
    return request.app.state.metrics.snapshot(scoring.ANOMALY)
