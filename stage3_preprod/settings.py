"""Stage 3 configuration: one settings class, the only place that reads the environment.

Each field is read from the variable of the same name in capitals (``PORT``,
``MODELS_DIR``...), with a safe default; an empty variable counts as unset. A value
that does not fit (``PORT=abc``) stops the service with a French message naming the
variable.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from pydantic import Field, StringConstraints, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

from common.messages import reason
from common.registry import DEFAULT_MODELS_DIR


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_ignore_empty=True, frozen=True)

    models_dir: Path = DEFAULT_MODELS_DIR
    model_version: str | None = None  # None: the latest version in the registry
    host: str = "127.0.0.1"
    port: int = Field(8003, ge=1, le=65535)
    max_upload_bytes: int = 20 * 1024 * 1024
    max_body_bytes: int = 16 * 1024  # JSON API requests; a reading is a few hundred bytes
    git_commit: str = "inconnu"  # set at image build (ARG -> ENV)
    build_date: str = "inconnue"
    log_level: Annotated[str, StringConstraints(to_upper=True)] = "INFO"
    log_dir: Path = Path("logs")  # the inference log: one CSV file per UTC day
    max_batch_rows: int = Field(1000, ge=1)  # readings in one POST /predict/batch
    stream_max_equipments: int = Field(1000, ge=1)  # equipments whose recent readings the stream keeps
    # Set (with the folder emptied) by whoever starts several workers: they then count /metrics together.
    prometheus_multiproc_dir: Path | None = None


class SettingsError(ValueError):
    """An environment variable holds a value the service cannot use; the message (French) names it."""


def get_settings() -> Settings:
    """The settings read from the environment now; SettingsError names every variable to fix."""
    try:
        return Settings()
    except ValidationError as exc:
        problems = "; ".join(f"{str(e['loc'][0]).upper()} : {reason(e, '')}" for e in exc.errors())
        raise SettingsError(f"variable d'environnement à corriger : {problems}") from None
