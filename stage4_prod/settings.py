"""Stage 4 configuration: one class, read from the environment with safe defaults, the only module that reads it.

Each field is filled from the environment variable named in its ``alias`` (an empty variable
counts as unset). A bad value stops the service with a French message naming the variable:
``PORT='abc' invalide : nombre entier attendu``. The service's API keys are not settings:
they live hashed in the state database. ``API_KEY`` is the key the stage's clients send
(``client.py``, ``replay.py``), kept as a ``SecretStr`` so that no repr or log shows it.

The module imports nothing of the stage, nor anything heavy: every module, the clients
included, may depend on it.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator

DEFAULT_MODELS_DIR = Path(__file__).resolve().parent.parent / "models"  # common.registry's default, not imported


class SettingsError(ValueError):
    """An environment variable holds a value the service cannot use; the message (French) names it."""


class Settings(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore", populate_by_name=True, protected_namespaces=())

    models_dir: Path = Field(DEFAULT_MODELS_DIR, alias="MODELS_DIR")
    # The version served at the very first start (None: the latest); then the deployment pointer decides.
    model_version: str | None = Field(None, alias="MODEL_VERSION")
    host: str = Field("127.0.0.1", alias="HOST")
    port: int = Field(8014, ge=1, le=65535, alias="PORT")
    max_upload_bytes: int = Field(20 * 1024 * 1024, ge=1, alias="MAX_UPLOAD_BYTES")
    # JSON API requests and stream messages; a reading is a few hundred bytes.
    max_body_bytes: int = Field(16 * 1024, ge=1, alias="MAX_BODY_BYTES")
    git_commit: str = Field("inconnu", alias="GIT_COMMIT")  # set at image build (ARG -> ENV)
    build_date: str = Field("inconnue", alias="BUILD_DATE")
    log_level: str = Field("INFO", alias="LOG_LEVEL")
    log_dir: Path = Field(Path("logs"), alias="LOG_DIR")  # the inference log: one CSV file per UTC day
    max_batch_rows: int = Field(1000, ge=1, alias="MAX_BATCH_ROWS")  # readings in one POST /predict/batch
    # Equipments whose recent readings the stream keeps in memory.
    stream_max_equipments: int = Field(1000, ge=1, alias="STREAM_MAX_EQUIPMENTS")
    # SQLite (WAL): API key hashes, audit trail, served-model pointer, feedback (state.py).
    state_db: Path = Field(Path("state") / "stage4.sqlite", alias="STATE_DB")
    # PRAGMA synchronous: NORMAL survives a process crash, FULL a power cut too (slower). OFF could
    # lose rows already answered: refused.
    audit_sync: Literal["NORMAL", "FULL", "EXTRA"] = Field("NORMAL", alias="AUDIT_SYNC")
    # Requests per second and per key on average (0: no limit), and the burst allowed at once (auth.py).
    rate_limit_per_s: float = Field(20.0, ge=0, allow_inf_nan=False, alias="RATE_LIMIT_PER_S")
    rate_limit_burst: int = Field(40, ge=1, alias="RATE_LIMIT_BURST")
    # Recent readings compared with the model's reference: one day at one reading a minute (drift.py).
    drift_window: int = Field(1440, ge=1, alias="DRIFT_WINDOW")
    # How often a worker looks at the served-model pointer (deployment.py).
    model_check_interval_s: float = Field(0.2, ge=0, allow_inf_nan=False, alias="MODEL_CHECK_INTERVAL_S")
    workers: int = Field(2, ge=1, alias="WORKERS")  # uvicorn processes; they share the state database
    api_key: SecretStr | None = Field(None, alias="API_KEY")  # what the clients send; the service never reads it

    @field_validator("log_level", "audit_sync", mode="before")
    @classmethod
    def _upper_case(cls, value: object) -> object:
        return value.strip().upper() if isinstance(value, str) else value


ENVIRONMENT = tuple(field.alias for field in Settings.model_fields.values())  # the variables read

_REASONS = {  # pydantic's error types, in French
    "int_parsing": "nombre entier attendu",
    "float_parsing": "nombre attendu",
    "finite_number": "nombre fini attendu",
    "greater_than_equal": "au moins {ge} attendu",
    "less_than_equal": "au plus {le} attendu",
    "literal_error": "valeurs admises {expected}",
}


def get_settings(environ: Mapping[str, str] | None = None) -> Settings:
    """The settings from ``environ`` (default: the process environment), read anew at each call.

    Raises SettingsError (French, naming the variable) for the first bad value.
    """
    source = os.environ if environ is None else environ
    values = {name: source[name] for name in ENVIRONMENT if source.get(name, "").strip()}
    try:
        return Settings.model_validate(values)
    except ValidationError as exc:
        error = exc.errors()[0]
        name = str(error["loc"][0])
        context = {k: str(v).replace("'", "").replace(" or ", ", ") for k, v in (error.get("ctx") or {}).items()}
        reason = _REASONS.get(error["type"], "valeur invalide").format(**context)
        raise SettingsError(f"{name}={values.get(name)!r} invalide : {reason}") from None
