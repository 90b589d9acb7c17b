"""Stage 4 fixtures: the API under FastAPI's TestClient, on the session's test registry and a fresh state database."""

from __future__ import annotations

import logging

import pytest
from fastapi.testclient import TestClient

from stage4_prod import auth
from stage4_prod.app import app
from stage4_prod.logging_config import StdoutHandler

ROLES = auth.ROLES


@pytest.fixture(autouse=True)
def restore_logging():
    """The app configures the root logger at startup: give the next tests the logging they had."""
    root = logging.getLogger()
    level = root.level
    yield
    for handler in [h for h in root.handlers if isinstance(h, StdoutHandler)]:
        root.removeHandler(handler)
    root.setLevel(level)
    logging.getLogger("uvicorn.access").disabled = False


@pytest.fixture
def state_db(model_env, tmp_path, monkeypatch):
    """A fresh state database and inference log; default settings, a rate limit no test reaches by accident."""
    for name in ("GIT_COMMIT", "BUILD_DATE", "MAX_BODY_BYTES", "MAX_UPLOAD_BYTES", "LOG_LEVEL", "MAX_BATCH_ROWS"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("STATE_DB", str(tmp_path / "state.sqlite"))
    monkeypatch.setenv("LOG_DIR", str(tmp_path / "logs"))
    monkeypatch.setenv("RATE_LIMIT_PER_S", "10000")
    monkeypatch.setenv("RATE_LIMIT_BURST", "10000")
    monkeypatch.setenv("MODEL_CHECK_INTERVAL_S", "0")  # follow the pointer on every request
    return tmp_path / "state.sqlite"


@pytest.fixture
def keys(state_db):
    """One key per role, named after it, plus a revoked operator key (``revoked``)."""
    made = {role: auth.create_key(state_db, role, role, by="test") for role in ROLES}
    made["revoked"] = auth.create_key(state_db, "ancien", "operator", by="test")
    auth.revoke_key(state_db, made["revoked"][3:19], by="test")
    return made


@pytest.fixture
def client(state_db, keys):
    with TestClient(app) as client:
        yield client
