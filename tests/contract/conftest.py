"""What the stages share, tested once: each test runs on every stage that has the feature.

Stage N+1 starts as stage N, so a behaviour a user relied on in stage N must still hold in
stage N+1. The stage folders (tests/stageN_*) test only what their step adds.
"""

from __future__ import annotations

import importlib
import logging

import pytest
from fastapi.testclient import TestClient

WITH_FORM = ("stage1_local", "stage2_shared", "stage3_preprod")  # the web page, the command line, train.py
WITH_API = ("stage2_shared", "stage3_preprod")  # POST /predict, GET /health, GET /version, the client
WITH_BATCH = ("stage3_preprod",)  # POST /predict/batch, POST /predict/csv, the WebSocket /stream


def stage_module(stage: str, name: str):
    return importlib.import_module(f"{stage}.{name}")


@pytest.fixture(autouse=True)
def restore_logging():
    """The apps configure the root logger at startup: give the next tests the logging they had."""
    root = logging.getLogger()
    level, handlers = root.level, list(root.handlers)
    yield
    for handler in [h for h in root.handlers if h not in handlers]:
        root.removeHandler(handler)
    root.setLevel(level)
    logging.getLogger("uvicorn.access").disabled = False


@pytest.fixture
def stage_env(model_env, tmp_path, monkeypatch):
    """Settings as a user starts a stage by hand: the test registry, default limits, the test's own inference log."""
    for name in ("GIT_COMMIT", "BUILD_DATE", "MAX_BODY_BYTES", "MAX_UPLOAD_BYTES", "LOG_LEVEL", "PORT", "HOST"):
        monkeypatch.delenv(name, raising=False)
    for name in ("MAX_BATCH_ROWS", "MODEL_VERSION", "PROMETHEUS_MULTIPROC_DIR"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("LOG_DIR", str(tmp_path / "journal"))  # stage 3 on: where the inference log goes
    return model_env


@pytest.fixture(params=WITH_FORM)
def form_stage(request, stage_env):
    """(stage name, TestClient of its app) for every stage serving the web page."""
    with TestClient(stage_module(request.param, "app").app) as client:
        yield request.param, client


@pytest.fixture(params=WITH_API)
def api_stage(request, stage_env):
    with TestClient(stage_module(request.param, "app").app) as client:
        yield request.param, client
