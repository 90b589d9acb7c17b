"""Stage 4 configuration, read once from the environment with safe defaults; secrets never come from here."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Settings:
    models_dir: Path
    model_version: str | None  # the version served at the very first start (None: the latest); then the pointer
    host: str
    port: int
    max_upload_bytes: int
    max_body_bytes: int  # JSON API requests and stream messages; a reading is a few hundred bytes
    git_commit: str  # set at image build (ARG -> ENV); "inconnu" outside an image
    build_date: str
    log_level: str
    log_dir: Path  # the inference log: one CSV file per UTC day
    max_batch_rows: int  # readings in one POST /predict/batch
    stream_max_equipments: int  # equipments whose recent readings the stream keeps in memory
    state_db: Path  # SQLite (WAL): API key hashes, audit trail, served-model pointer, feedback
    audit_sync: str  # PRAGMA synchronous: NORMAL (survives a process crash) or FULL (a power cut, slower)
    rate_limit_per_s: float  # requests per second and per key, on average (0: no limit)
    rate_limit_burst: int  # requests a key may send at once before the average applies
    drift_window: int  # recent readings compared with the model's reference
    model_check_interval_s: float  # how often a worker looks at the served-model pointer
    workers: int  # uvicorn processes of python -m stage4_prod.app (they share the state database)


def get_settings() -> Settings:
    from common.registry import models_dir
    from stage4_prod import audit, auth, deployment, drift

    return Settings(
        models_dir=models_dir(os.environ.get("MODELS_DIR")),
        model_version=os.environ.get("MODEL_VERSION") or None,
        host=os.environ.get("HOST", "127.0.0.1"),
        port=int(os.environ.get("PORT", "8014")),
        max_upload_bytes=int(os.environ.get("MAX_UPLOAD_BYTES", str(20 * 1024 * 1024))),
        max_body_bytes=int(os.environ.get("MAX_BODY_BYTES", str(16 * 1024))),
        git_commit=os.environ.get("GIT_COMMIT") or "inconnu",
        build_date=os.environ.get("BUILD_DATE") or "inconnue",
        log_level=os.environ.get("LOG_LEVEL", "INFO").upper(),
        log_dir=Path(os.environ.get("LOG_DIR") or "logs"),
        max_batch_rows=int(os.environ.get("MAX_BATCH_ROWS", "1000")),
        stream_max_equipments=int(os.environ.get("STREAM_MAX_EQUIPMENTS", "1000")),
        state_db=audit.db_path(),  # STATE_DB, else state/stage4.sqlite
        audit_sync=audit.sync_mode(),  # AUDIT_SYNC, else NORMAL; ValueError (French) if invalid
        rate_limit_per_s=float(os.environ.get("RATE_LIMIT_PER_S", str(auth.DEFAULT_RATE_PER_S))),
        rate_limit_burst=int(os.environ.get("RATE_LIMIT_BURST", str(auth.DEFAULT_BURST))),
        drift_window=int(os.environ.get("DRIFT_WINDOW", str(drift.WINDOW))),
        model_check_interval_s=float(
            os.environ.get("MODEL_CHECK_INTERVAL_S", str(deployment.DEFAULT_CHECK_INTERVAL_S))
        ),
        workers=int(os.environ.get("WORKERS", "2")),
    )
