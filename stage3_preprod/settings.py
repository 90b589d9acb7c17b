"""Stage 3 configuration, read once from the environment with safe defaults."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Settings:
    models_dir: Path
    model_version: str | None  # None: the latest version in the registry
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


def get_settings() -> Settings:
    from common.registry import models_dir

    return Settings(
        models_dir=models_dir(os.environ.get("MODELS_DIR")),
        model_version=os.environ.get("MODEL_VERSION") or None,
        host=os.environ.get("HOST", "127.0.0.1"),
        port=int(os.environ.get("PORT", "8003")),
        max_upload_bytes=int(os.environ.get("MAX_UPLOAD_BYTES", str(20 * 1024 * 1024))),
        max_body_bytes=int(os.environ.get("MAX_BODY_BYTES", str(16 * 1024))),
        git_commit=os.environ.get("GIT_COMMIT") or "inconnu",
        build_date=os.environ.get("BUILD_DATE") or "inconnue",
        log_level=os.environ.get("LOG_LEVEL", "INFO").upper(),
        log_dir=Path(os.environ.get("LOG_DIR") or "logs"),
        max_batch_rows=int(os.environ.get("MAX_BATCH_ROWS", "1000")),
        stream_max_equipments=int(os.environ.get("STREAM_MAX_EQUIPMENTS", "1000")),
    )
