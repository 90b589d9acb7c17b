"""Stage 4 configuration: one settings class, the only place that reads the environment.

Each field is read from the variable of the same name in capitals (``PORT``, ``STATE_DB``,
``AUDIT_SYNC``...), with a safe default; an empty variable counts as unset. A value that
does not fit (``PORT=abc``, ``AUDIT_SYNC=OFF``) stops the service with a French message
naming the variable. The service's API keys are not settings: they live hashed in the
state database. ``API_KEY`` is the key the stage's clients send (``client.py``,
``replay.py``), kept as a ``SecretStr`` so that no repr or log shows it.

The module imports nothing of the stage: every other module may depend on it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BeforeValidator, Field, SecretStr, StringConstraints, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

from common.messages import reason
from common.registry import DEFAULT_MODELS_DIR


def _upper(value: Any) -> Any:
    return value.strip().upper() if isinstance(value, str) else value


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_ignore_empty=True, frozen=True)

    models_dir: Path = DEFAULT_MODELS_DIR
    model_version: str | None = None  # served at the very first start (None: the latest); then the pointer decides
    host: str = "127.0.0.1"
    port: int = Field(8014, ge=1, le=65535)
    max_upload_bytes: int = 20 * 1024 * 1024
    max_body_bytes: int = 16 * 1024  # JSON API requests and stream messages; a reading is a few hundred bytes
    git_commit: str = "inconnu"  # set at image build (ARG -> ENV)
    build_date: str = "inconnue"
    log_level: Annotated[str, StringConstraints(to_upper=True)] = "INFO"
    log_dir: Path = Path("logs")  # the inference log: one CSV file per UTC day
    max_batch_rows: int = Field(1000, ge=1)  # readings in one POST /predict/batch
    stream_max_equipments: int = Field(1000, ge=1)  # equipments whose recent readings the stream keeps
    state_db: Path = Path("state") / "stage4.sqlite"  # SQLite (WAL): keys, audit trail, model pointer, feedback
    # PRAGMA synchronous: NORMAL survives a process crash, FULL a power cut too (slower); OFF could
    # lose rows already answered, so it is refused.
    audit_sync: Annotated[Literal["NORMAL", "FULL", "EXTRA"], BeforeValidator(_upper)] = "NORMAL"
    rate_limit_per_s: float = Field(20.0, ge=0, allow_inf_nan=False)  # per key, on average (0: no limit)
    rate_limit_burst: int = Field(40, ge=1)  # requests a key may send at once before the average applies
    drift_window: int = Field(1440, ge=1)  # recent readings compared with the reference: a day, one a minute
    model_check_interval_s: float = Field(0.2, ge=0, allow_inf_nan=False)  # how often a worker reads the pointer
    workers: int = Field(2, ge=1)  # uvicorn processes of python -m stage4_prod.app; they share the state database
    api_key: SecretStr | None = None  # what the clients send; the service never reads it
    # Set (with the folder emptied) by whoever starts several workers: they then count /metrics together.
    prometheus_multiproc_dir: Path | None = None


class SettingsError(ValueError):
    """An environment variable holds a value the service cannot use; the message (French) names it."""


def _reason(error: dict[str, Any]) -> str:
    """``common.messages.reason``, and the words for what only settings meet (a list of values, a decimal)."""
    value, ctx = error.get("input"), error.get("ctx") or {}
    if error["type"] == "literal_error":
        allowed = str(ctx.get("expected", "")).replace("'", "").replace(" or ", ", ")
        return f"« {value} » refusé : valeurs admises {allowed}"
    if error["type"] == "float_parsing":
        return f"« {value} » n'est pas un nombre"
    if error["type"] == "finite_number":
        return f"« {value} » refusé : nombre fini attendu"
    return reason(error, "")


def get_settings() -> Settings:
    """The settings read from the environment now; SettingsError names every variable to fix."""
    try:
        return Settings()
    except ValidationError as exc:
        problems = "; ".join(f"{str(e['loc'][0]).upper()} : {_reason(e)}" for e in exc.errors())
        raise SettingsError(f"variable d'environnement à corriger : {problems}") from None
