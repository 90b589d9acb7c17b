"""A JSON summary of a service since its process started: requests, errors, latency, predictions.

What a person reads (error rate, latency p50, p95, p99, anomaly rate per model version),
counted in memory by one process. Latency percentiles come from a bounded reservoir sample
(Vitter's algorithm R): memory stays fixed however long the service runs, and every
request since start has the same chance to be in the sample. Prometheus's format, for a
monitoring server, is the stages' ``/metrics``.
"""

from __future__ import annotations

import os
import random
import threading
from collections import Counter
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pandas as pd

RESERVOIR_SIZE = 4096


class RequestStats:
    """Thread-safe counters of one process: requests by route and status, latency sample, predictions."""

    def __init__(self, reservoir_size: int = RESERVOIR_SIZE, seed: int = 0):
        self.started_at = datetime.now(UTC)
        self.reservoir_size = reservoir_size
        self._requests: Counter[tuple[str, int]] = Counter()
        self._latencies: list[float] = []
        self._seen = 0
        self._random = random.Random(seed)
        self._predictions: Counter[tuple[str, str]] = Counter()  # (model version, decision)
        self._lock = threading.Lock()

    def record_request(self, route: str, status: int, latency_ms: float) -> None:
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
        counts = Counter(pairs)
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
