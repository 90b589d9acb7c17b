"""What ``make bench`` serves and loads: one ``Service`` per stage (and per peer), its ``Scenario`` list.

To measure a stage that lands, fill in or switch on (``ready=True``) its scenarios here;
nothing else changes: a service whose folder is missing is skipped and reported as such,
so is a scenario that is not ready (with its note).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from dataclasses import dataclass, field

from common.schema import DEFAULT_EQUIPMENT_ID, EQUIPMENT_ID, EXAMPLE_READING

READING = {**EXAMPLE_READING, EQUIPMENT_ID: DEFAULT_EQUIPMENT_ID}
BATCH_ROWS = 1000


def reading_json() -> bytes:
    return json.dumps(READING).encode()


def batch_json(rows: int = BATCH_ROWS) -> bytes:
    """``rows`` readings of one equipment, one second apart (a stage 3 batch body, to be confirmed)."""
    readings = [{**READING, "timestamp": f"2026-01-05T00:{i // 60 % 60:02d}:{i % 60:02d}"} for i in range(rows)]
    return json.dumps({"readings": readings}).encode()


@dataclass(frozen=True)
class Scenario:
    """One kind of request, sent by ``bench.load`` at each concurrency, to each worker count."""

    name: str
    path: str
    body: Callable[[], bytes] | None = reading_json  # None: a GET
    content_type: str = "application/json"
    rows: int = 1  # readings scored per request (rows/s = requests/s x rows)
    concurrency: tuple[int, ...] = (1, 16)
    requests: int = 1000  # at one client; twice as many at more
    ready: bool = True
    note: str = ""

    @property
    def method(self) -> str:
        return "GET" if self.body is None else "POST"


@dataclass(frozen=True)
class Service:
    key: str
    label: str
    folder: str  # skipped when this folder (relative to the repository) is missing
    command: Callable[[int, int], list[str]]  # (port, workers) -> command line
    health: str
    scenarios: tuple[Scenario, ...]
    workers: tuple[int, ...] = (1, 2)
    env: dict[str, str] = field(default_factory=dict)


def uvicorn(app: str) -> Callable[[int, int], list[str]]:
    """The stages' own way to serve (their Dockerfile's CMD), with the project's interpreter."""

    def command(port: int, workers: int) -> list[str]:
        return [sys.executable, "-m", "uvicorn", app, "--host", "127.0.0.1", "--port", str(port)] + [
            "--workers",
            str(workers),
            "--no-access-log",
        ]

    return command


HEALTH = Scenario("GET /health (plancher du cadriciel)", "/health", body=None, concurrency=(1,))
ONE_READING = Scenario("POST /predict (une mesure)", "/predict")

STAGES = (
    Service(
        "stage2",
        "Étape 2 (FastAPI, uvicorn)",
        "stage2_shared",
        uvicorn("stage2_shared.app:app"),
        "/health",
        (ONE_READING, HEALTH),
    ),
    Service(
        "stage3",
        "Étape 3",
        "stage3_preprod",
        uvicorn("stage3_preprod.app:app"),
        "/health",
        (
            Scenario(**{**ONE_READING.__dict__, "ready": False, "note": "à brancher quand l'étape 3 sera livrée"}),
            Scenario(
                f"POST /predict/batch ({BATCH_ROWS} mesures)",
                "/predict/batch",
                body=batch_json,
                rows=BATCH_ROWS,
                requests=200,
                ready=False,
                note="corps à confirmer sur l'API livrée ; cible : lignes/s >= scikit-learn brut sur 1 M lignes",
            ),
            Scenario(
                "POST /predict/csv (fichier)",
                "/predict/csv",
                ready=False,
                note="corps multipart à écrire ; lignes/s",
            ),
            Scenario(
                "WebSocket /stream",
                "/stream",
                ready=False,
                note="le générateur de charge ne parle pas encore WebSocket ; mesures/s",
            ),
        ),
    ),
    Service(
        "stage4",
        "Étape 4",
        "stage4_prod",
        uvicorn("stage4_prod.app:app"),
        "/health",
        (
            Scenario(
                **{**ONE_READING.__dict__, "ready": False, "note": "clé d'API à ajouter ; cible : >= 0,5 x l'étape 2"}
            ),
        ),
    ),
)
