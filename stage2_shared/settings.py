"""Stage 2 configuration, read once from the environment with safe defaults."""

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
    max_body_bytes: int  # JSON API requests; a reading is a few hundred bytes
    git_commit: str  # set at image build (ARG -> ENV); "inconnu" outside an image
    build_date: str
    log_level: str


def get_settings() -> Settings:
    from common.registry import models_dir

    return Settings(
        models_dir=models_dir(os.environ.get("MODELS_DIR")),
        model_version=os.environ.get("MODEL_VERSION") or None,
        host=os.environ.get("HOST", "127.0.0.1"),
        port=int(os.environ.get("PORT", "8002")),
        max_upload_bytes=int(os.environ.get("MAX_UPLOAD_BYTES", str(20 * 1024 * 1024))),
        max_body_bytes=int(os.environ.get("MAX_BODY_BYTES", str(16 * 1024))),
        git_commit=os.environ.get("GIT_COMMIT") or "inconnu",
        build_date=os.environ.get("BUILD_DATE") or "inconnue",
        log_level=os.environ.get("LOG_LEVEL", "INFO").upper(),
    )
