"""Stage 3 fixtures: the API under FastAPI's TestClient, on the session's test registry."""

from __future__ import annotations

import logging

import pytest
from fastapi.testclient import TestClient

from stage3_preprod.app import app
from stage3_preprod.logging_config import StdoutHandler


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
def log_dir(tmp_path, monkeypatch):
    """The inference log of this test, in its own folder."""
    folder = tmp_path / "logs"
    monkeypatch.setenv("LOG_DIR", str(folder))
    return folder


@pytest.fixture
def api_env(model_env, log_dir, monkeypatch):
    """Settings as outside an image: no commit, no build date, default limits, a fresh inference log."""
    for name in ("GIT_COMMIT", "BUILD_DATE", "MAX_BODY_BYTES", "MAX_UPLOAD_BYTES", "LOG_LEVEL", "MAX_BATCH_ROWS"):
        monkeypatch.delenv(name, raising=False)
    return model_env


@pytest.fixture
def client(api_env):
    with TestClient(app) as client:
        yield client
