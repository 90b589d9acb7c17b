"""What ``make bench`` serves and loads: one ``Service`` per stage (and per peer), its ``Scenario`` list.

To measure a stage that lands, fill in or switch on (``ready=True``) its scenarios here;
nothing else changes: a service whose folder is missing is skipped and reported as such,
so is a scenario that is not ready (with its note). A service's ``prepare`` gives each
server run its environment (temporary state and log directories) and the headers of every
request (stage 4's operator key).
"""

from __future__ import annotations

import io
import json
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from common.schema import DEFAULT_EQUIPMENT_ID, EQUIPMENT_ID, EXAMPLE_READING

READING = {**EXAMPLE_READING, EQUIPMENT_ID: DEFAULT_EQUIPMENT_ID}
BATCH_ROWS = 1000
CSV_ROWS = 10_000
BOUNDARY = "bench-boundary-7d1f0c"
OPERATOR_KEY_NAME = "bench"


def reading_json() -> bytes:
    return json.dumps(READING).encode()


def batch_json(rows: int = BATCH_ROWS) -> bytes:
    """Stage 3/4 ``POST /predict/batch`` body: a JSON list of ``rows`` readings of one equipment, one second apart."""
    readings = [
        {**READING, "timestamp": f"2026-01-05T{i // 3600:02d}:{i // 60 % 60:02d}:{i % 60:02d}"} for i in range(rows)
    ]
    return json.dumps(readings).encode()


def csv_multipart(rows: int = CSV_ROWS) -> bytes:
    """Stage 3/4 ``POST /predict/csv`` body: a simulated file of ``rows`` readings (SKAB format) in field ``fichier``."""
    from common.data import write_csv
    from common.simulator import simulate

    frame = simulate("normal", seed=7, hours=rows * 36 / 3600, period_s=36)
    assert len(frame) == rows, len(frame)
    out = io.StringIO()
    write_csv(frame, out)
    head = (
        f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="fichier"; filename="bench.csv"\r\n'
        "Content-Type: text/csv\r\n\r\n"
    )
    return head.encode() + out.getvalue().encode() + f"\r\n--{BOUNDARY}--\r\n".encode()


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
    warmup: int = 200
    max_seconds: float = 10.0
    websocket: bool = False  # one reading per message over WebSocket connections (one per client)
    ready: bool = True
    note: str = ""

    @property
    def method(self) -> str:
        return "GET" if self.body is None else "POST"


# (temporary directory of one server run) -> (environment of the server, headers of every request)
Prepare = Callable[[Path], tuple[dict[str, str], dict[str, str]]]


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
    prepare: Prepare | None = None  # called before each server start, in a fresh temporary directory


def uvicorn(app: str) -> Callable[[int, int], list[str]]:
    """The stages' own way to serve (their Dockerfile's CMD: uvicorn, a socket per worker), with the project's interpreter."""

    def command(port: int, workers: int) -> list[str]:
        return [sys.executable, "-m", "common.serve", app, "--host", "127.0.0.1", "--port", str(port)] + [
            "--workers",
            str(workers),
            "--no-access-log",
        ]

    return command


def stage3_prepare(workdir: Path) -> tuple[dict[str, str], dict[str, str]]:
    """Stage 3 writes its inference log under LOG_DIR: a temporary one per server run."""
    return {"LOG_DIR": str(workdir / "logs")}, {}


def stage4_prepare(workdir: Path) -> tuple[dict[str, str], dict[str, str]]:
    """A fresh state database (STATE_DB) with one operator key, created before the server starts.

    The per-key rate limit (20/s by default) is raised far above what the bench sends, so
    that it is measured as a cost on every request but never refuses one.
    """
    from stage4_prod.auth import HEADER, create_key

    db = workdir / "state.sqlite"
    key = create_key(db, OPERATOR_KEY_NAME, "operator", by="bench")
    env = {
        "STATE_DB": str(db),
        "LOG_DIR": str(workdir / "logs"),
        "RATE_LIMIT_PER_S": "1000000",
        "RATE_LIMIT_BURST": "1000000",
    }
    return env, {HEADER: key}


def temporary_workdir() -> tempfile.TemporaryDirectory:
    return tempfile.TemporaryDirectory(prefix="bench-state-")


HEALTH = Scenario("GET /health (plancher du cadriciel)", "/health", body=None, concurrency=(1,))
ONE_READING = Scenario("POST /predict (une mesure)", "/predict")
BATCH = Scenario(
    f"POST /predict/batch ({BATCH_ROWS} mesures)",
    "/predict/batch",
    body=batch_json,
    rows=BATCH_ROWS,
    requests=50,
    warmup=5,
    max_seconds=8.0,
)
CSV = Scenario(
    f"POST /predict/csv (fichier de {CSV_ROWS:,} lignes)".replace(",", " "),
    "/predict/csv",
    body=csv_multipart,
    content_type=f"multipart/form-data; boundary={BOUNDARY}",
    rows=CSV_ROWS,
    concurrency=(1, 2),
    requests=5,
    warmup=1,
    max_seconds=8.0,
)
STREAM = Scenario(
    "WebSocket /stream (une mesure par message, une connexion par client)",
    "/stream",
    websocket=True,
)
STAGE3_SCENARIOS = (ONE_READING, HEALTH, BATCH, CSV, STREAM)

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
        STAGE3_SCENARIOS,
        prepare=stage3_prepare,
    ),
    Service(
        "stage4",
        "Étape 4 (clé operator)",
        "stage4_prod",
        uvicorn("stage4_prod.app:app"),
        "/health",
        STAGE3_SCENARIOS,
        prepare=stage4_prepare,
    ),
)


# The framework's floor (bench/floor.py): FastAPI and uvicorn with the same body and no work, one worker.
FLOOR = Service(
    "floor",
    "FastAPI nu (plancher, bench/floor.py)",
    "bench",
    uvicorn("bench.floor:app"),
    "/health",
    (ONE_READING,),
    workers=(1,),
)
